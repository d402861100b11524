import { randomUUID } from 'node:crypto';
import type { BigIntStats, Dirent } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { InvalidKeyError, ObjectNotFoundError } from '../../errors.ts';
import type { ByteRange, ObjectInfo, ObjectStore, WriteOptions } from '../../ports/object-store.ts';
import { assertValidKey, assertValidPrefix, assertValidRange } from '../object-key.ts';

/** Directory under the root that holds in-progress writes; never part of any key. */
export const TMP_DIR_NAME = '.sluice-tmp';

/** How often a write retries when a concurrent delete prunes its parent directory mid-write. */
const INSTALL_ATTEMPTS = 3;

/**
 * An `ObjectStore` on the local filesystem: key `a/b.gz` is the file `<root>/a/b.gz`.
 *
 * Writes go to a uniquely named file in `<root>/.sluice-tmp/`, are fsynced, then renamed onto the key's
 * path. Rename within one filesystem is atomic, so readers see the old file or the complete new one, and
 * a crash mid-write leaves at most an orphan in `.sluice-tmp` (which `list` and `head` ignore).
 *
 * Unlike S3, a key cannot be both an object and a prefix of other objects (`a` and `a/b`): a path cannot
 * be a file and a directory at once. Such writes fail with `InvalidKeyError`. `contentType` is ignored.
 */
export class FileObjectStore implements ObjectStore {
  readonly #root: string;
  readonly #tmpDir: string;

  constructor(rootDir: string) {
    this.#root = path.resolve(rootDir);
    this.#tmpDir = path.join(this.#root, TMP_DIR_NAME);
  }

  /** The absolute path of the key's file. */
  uri(key: string): string {
    return this.#pathOf(key);
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const file = this.#pathOf(key);
    if (range) assertValidRange(range);
    const handle = await open(file, 'r').catch((error: unknown) => {
      throw isMissing(error) ? new ObjectNotFoundError(key) : error;
    });
    try {
      // Opening a directory for reading succeeds on Linux; it is still not an object.
      if (!(await handle.stat()).isFile()) throw new ObjectNotFoundError(key);
    } catch (error) {
      await handle.close();
      throw error;
    }
    // `end` is inclusive, as in ByteRange; a start past the end yields no bytes. The stream closes the handle.
    return handle.createReadStream({ start: range?.start, end: range?.end });
  }

  async write(
    key: string,
    body: Uint8Array | string | Readable,
    _options?: WriteOptions,
  ): Promise<ObjectInfo> {
    const file = this.#pathOf(key);
    await mkdir(this.#tmpDir, { recursive: true });
    const tmp = path.join(this.#tmpDir, `${randomUUID()}.tmp`);
    let installed = false;
    try {
      const handle = await open(tmp, 'wx');
      let stats: BigIntStats;
      try {
        await writeFile(handle, body).catch((error: unknown) => {
          // Like stream.pipeline: a failed write releases its source (e.g. the socket of a GetObject).
          if (body instanceof Readable) body.destroy();
          throw error;
        });
        await handle.sync();
        // Rename keeps size, mtime and inode, so these stats describe the object as installed.
        stats = await handle.stat({ bigint: true });
      } finally {
        await handle.close();
      }
      await this.#install(tmp, file, key);
      installed = true;
      await syncDirectory(path.dirname(file));
      return toObjectInfo(key, stats);
    } finally {
      if (!installed) await rm(tmp, { force: true });
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const file = this.#pathOf(key);
    try {
      const stats = await stat(file, { bigint: true });
      return stats.isFile() ? toObjectInfo(key, stats) : undefined;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertValidPrefix(prefix);
    // Start at the deepest directory the prefix names fully; the rest of it filters names in there.
    const startDir = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    if (isReserved(startDir)) return;
    yield* this.#walk(startDir, prefix);
  }

  async delete(key: string): Promise<void> {
    const file = this.#pathOf(key);
    try {
      await unlink(file);
    } catch (error) {
      // Absent, or a directory (which is not an object): either way there is no object to delete.
      if (isMissing(error) || errorCode(error) === 'EISDIR' || errorCode(error) === 'EPERM') return;
      throw error;
    }
    await this.#pruneEmptyParents(path.dirname(file));
  }

  /** Yields the objects under directory key `dirKey` (`''` or ending in `/`) that start with `prefix`, in key order. */
  async *#walk(dirKey: string, prefix: string): AsyncGenerator<ObjectInfo> {
    let dirents: Dirent[];
    try {
      dirents = await readdir(path.join(this.#root, dirKey), { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    // A directory `a` holds only keys starting with `a/`, so sorting it as `a/` among the file names makes
    // a depth-first walk produce global lexicographic order (`a-b` < `a.b` < `a/x` < `a0`), without
    // collecting the whole tree first.
    const entries: { key: string; isDir: boolean }[] = [];
    for (const dirent of dirents) {
      if (dirent.isDirectory()) entries.push({ key: `${dirKey}${dirent.name}/`, isDir: true });
      else if (dirent.isFile()) entries.push({ key: `${dirKey}${dirent.name}`, isDir: false });
      // Symlinks and special files are not objects (and a symlink could point outside the root).
    }
    entries.sort((a, b) => compareUtf8(a.key, b.key));
    for (const entry of entries) {
      if (entry.isDir) {
        const overlaps = entry.key.startsWith(prefix) || prefix.startsWith(entry.key);
        if (overlaps && !isReserved(entry.key)) yield* this.#walk(entry.key, prefix);
      } else if (entry.key.startsWith(prefix) && isValidKey(entry.key)) {
        // The file may be deleted between readdir and head; then it is simply no longer listed.
        const info = await this.head(entry.key);
        if (info) yield info;
      }
    }
  }

  /** Renames the finished temp file onto the key's path, creating parent directories as needed. */
  async #install(tmp: string, file: string, key: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await mkdir(path.dirname(file), { recursive: true });
      } catch (error) {
        const code = errorCode(error);
        if (code === 'ENOTDIR' || code === 'EEXIST') {
          throw new InvalidKeyError(
            key,
            'a leading part of it is an existing object (a file cannot be a directory)',
          );
        }
        throw error;
      }
      try {
        await rename(tmp, file);
        return;
      } catch (error) {
        const code = errorCode(error);
        const retry = attempt < INSTALL_ATTEMPTS;
        // A concurrent delete pruned the parent directory between mkdir and rename.
        if (code === 'ENOENT' && retry) continue;
        if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EPERM') {
          // The key's path is a directory: fine to replace if it is an empty leftover, else other objects live under it.
          if (retry && (await removeEmptyDirectory(file))) continue;
          throw new InvalidKeyError(
            key,
            'other objects exist under it as a prefix (a directory cannot be a file)',
          );
        }
        if (code === 'ENAMETOOLONG')
          throw new InvalidKeyError(key, 'a segment is too long for this filesystem');
        throw error;
      }
    }
  }

  /** Removes directories left empty by a delete, up to (not including) the root; stops at the first non-empty one. */
  async #pruneEmptyParents(dir: string): Promise<void> {
    while (dir.startsWith(this.#root + path.sep)) {
      if (!(await removeEmptyDirectory(dir))) return;
      dir = path.dirname(dir);
    }
  }

  #pathOf(key: string): string {
    assertValidKey(key);
    if (isReserved(key))
      throw new InvalidKeyError(key, `'${TMP_DIR_NAME}/' is reserved for in-progress writes`);
    const file = path.join(this.#root, ...key.split('/'));
    // Defence in depth: a validated key cannot escape, but the check is cheap and the stakes are high.
    if (!file.startsWith(this.#root + path.sep)) throw new InvalidKeyError(key, 'escapes the store root');
    return file;
  }
}

/**
 * The etag is `<size>-<mtime ns>-<inode>` (hex). Every write creates a new file (new inode, new mtime) and
 * renames it into place, so the etag changes on every write, even one with identical bytes. It is not
 * a content hash, so equal content in two files has different etags.
 */
function toObjectInfo(key: string, stats: BigIntStats): ObjectInfo {
  return {
    key,
    size: Number(stats.size),
    etag: `${stats.size.toString(16)}-${stats.mtimeNs.toString(16)}-${stats.ino.toString(16)}`,
    lastModified: stats.mtime,
  };
}

function isReserved(key: string): boolean {
  return key === TMP_DIR_NAME || key.startsWith(`${TMP_DIR_NAME}/`);
}

function isValidKey(key: string): boolean {
  try {
    assertValidKey(key);
    return true;
  } catch {
    // A file placed by hand with a name no key can have (e.g. a control character): not an object.
    return false;
  }
}

/** Byte order of the UTF-8 encodings, which is how S3 orders keys (differs from `<` only beyond the BMP). */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

async function removeEmptyDirectory(dir: string): Promise<boolean> {
  try {
    await rmdir(dir);
    return true;
  } catch {
    return false;
  }
}

/** Persists a rename in the directory entry; best effort, as some platforms cannot open directories. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // The object is already installed and visible; only durability across power loss is at stake.
  }
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** ENOENT: no such path; ENOTDIR: a leading part of the key is a file, so the key cannot exist. */
function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}
