import { createHash, randomUUID } from 'node:crypto';
import { type BigIntStats, createReadStream, type Dirent } from 'node:fs';
import {
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  statfs,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DiskFullError,
  InvalidKeyError,
  isDiskFull,
  ObjectNotFoundError,
  PreconditionFailedError,
  TransientError,
  UploadNotFoundError,
} from '../../errors.ts';
import {
  type ByteRange,
  MULTIPART_LIMITS,
  type MultipartUploads,
  type ObjectInfo,
  type ObjectStore,
  type UploadedPart,
  type WriteOptions,
} from '../../ports/object-store.ts';
import { assertValidKey, assertValidPrefix, assertValidRange } from '../object-key.ts';

/** Directory under the root that holds in-progress writes; never part of any key. */
export const TMP_DIR_NAME = '.sluice-tmp';

/** Directory under `.sluice-tmp` that holds the side locks of `ifMatch` writes, one file per key being written. */
const LOCK_DIR_NAME = 'locks';

/** Directory under `.sluice-tmp` that holds multipart uploads in progress, one directory per upload id. */
const UPLOADS_DIR_NAME = 'uploads';

/** How often a write retries when a concurrent delete prunes its parent directory mid-write. */
const INSTALL_ATTEMPTS = 3;

/**
 * A key lock older than this is stale: its holder died (a lock is held only for a stat and a rename, i.e.
 * microseconds to milliseconds), and the next writer breaks it.
 */
export const LOCK_STALE_MS = 30_000;

/** How long an `ifMatch` write waits for a key's lock: long enough to outlive and break a stale one. */
const LOCK_WAIT_MS = 2 * LOCK_STALE_MS;

/**
 * An `ObjectStore` on the local filesystem: key `a/b.gz` is the file `<root>/a/b.gz`.
 *
 * Writes go to a uniquely named file in `<root>/.sluice-tmp/`, are fsynced, then renamed onto the key's
 * path. Rename within one filesystem is atomic, so readers see the old file or the complete new one, and
 * a crash mid-write leaves at most an orphan in `.sluice-tmp` (which `list` and `head` ignore).
 *
 * Unlike S3, a key cannot be both an object and a prefix of other objects (`a` and `a/b`): a path cannot
 * be a file and a directory at once. Such writes fail with `InvalidKeyError`. `contentType` is ignored.
 *
 * Conditional writes, safe across processes sharing the folder (same host or one filesystem with POSIX
 * `link` and `rename` semantics):
 * - `ifAbsent` installs the finished temp file with `link(tmp, path)`, which creates the name atomically
 *   and fails with `EEXIST` if it exists, so the object appears complete, once, for exactly one writer.
 * - `ifMatch` takes the key's side lock (`.sluice-tmp/locks/<sha256(key)>.lock`, created with `O_EXCL`),
 *   compares the current etag, renames the temp file over the key and removes the lock. The lock is held
 *   for a stat and a rename only; one older than `LOCK_STALE_MS` (30 s) is stale (its holder died) and is
 *   broken by the next writer, which checks it moved away the very lock it judged stale.
 * Conditional writes serialize with each other, not with unconditional writes and deletes of the same key
 * (as on S3, those are last-writer-wins): write a key that others write conditionally only conditionally.
 */
export class FileObjectStore implements ObjectStore, MultipartUploads {
  readonly #root: string;
  readonly #tmpDir: string;
  readonly #lockDir: string;
  readonly #uploadsDir: string;

  constructor(rootDir: string) {
    this.#root = path.resolve(rootDir);
    this.#tmpDir = path.join(this.#root, TMP_DIR_NAME);
    this.#lockDir = path.join(this.#tmpDir, LOCK_DIR_NAME);
    this.#uploadsDir = path.join(this.#tmpDir, UPLOADS_DIR_NAME);
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
    options?: WriteOptions,
  ): Promise<ObjectInfo> {
    const file = this.#pathOf(key);
    const condition = conditionOf(options);
    // A write that has lost already fails before reading its body (checked again at install time).
    if (condition) await this.#checkCondition(key, condition).catch(releaseBody(body));
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
        // A sub-millisecond random part in the mtime keeps etags unique where the filesystem's clock is
        // coarse (a few ms on older Linux kernels) and an inode number is reused (see toObjectInfo).
        const mtime = (Date.now() + Math.random()) / 1000;
        await handle.utimes(mtime, mtime);
        await handle.sync();
        // Rename and link keep size, mtime and inode, so these stats describe the object as installed.
        stats = await handle.stat({ bigint: true });
      } finally {
        await handle.close();
      }
      if (condition?.kind === 'ifAbsent') {
        await this.#installIfAbsent(tmp, file, key);
      } else if (condition?.kind === 'ifMatch') {
        await this.#withKeyLock(key, async () => {
          await this.#checkCondition(key, condition);
          await this.#install(tmp, file, key);
        });
        installed = true;
      } else {
        await this.#install(tmp, file, key);
        installed = true;
      }
      await syncDirectory(path.dirname(file));
      return toObjectInfo(key, stats);
    } catch (error) {
      if (!isDiskFull(error)) throw error;
      throw new DiskFullError(file, `object ${key}`, await describeFreeSpace(this.#root), { cause: error });
    } finally {
      // After `link` the temp name is a second name of the object; removing it leaves the object.
      if (!installed) await rm(tmp, { force: true });
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const file = this.#pathOf(key);
    try {
      const stats = await stat(file, { bigint: true });
      // The change time is the installed file's (a write's own stats precede its install): head only.
      return stats.isFile()
        ? { ...toObjectInfo(key, stats), changeTag: stats.ctimeNs.toString(16) }
        : undefined;
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

  /*
   * Multipart uploads: `.sluice-tmp/uploads/<upload id>/` holds `key` (the key it is for) and one file per
   * part, `part-00001`…, each installed by rename so that a listed part is always whole. A part's etag is
   * its file's size, mtime and inode, like an object's. Completing joins the parts into a temp file and
   * installs it like `write` does, then removes the upload's directory.
   */

  async startUpload(key: string): Promise<string> {
    this.#pathOf(key);
    const uploadId = randomUUID();
    const dir = path.join(this.#uploadsDir, uploadId);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'key'), key);
    return uploadId;
  }

  async uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array | Readable,
    size: number,
  ): Promise<UploadedPart> {
    assertPartNumber(partNumber);
    const dir = await this.#uploadDir(key, uploadId).catch(releaseBody(body));
    const tmp = path.join(dir, `${randomUUID()}.tmp`);
    try {
      const handle = await open(tmp, 'wx');
      let stats: BigIntStats;
      try {
        await writeFile(handle, body).catch((error: unknown) => {
          if (body instanceof Readable) body.destroy();
          throw error;
        });
        await handle.sync();
        stats = await handle.stat({ bigint: true });
      } finally {
        await handle.close();
      }
      if (Number(stats.size) !== size) {
        throw new RangeError(
          `part ${partNumber} of upload ${uploadId} (${key}): the body has ${stats.size} bytes, not the declared ${size}`,
        );
      }
      await rename(tmp, path.join(dir, partFileName(partNumber))).catch((error: unknown) => {
        throw isMissing(error) ? new UploadNotFoundError(key, uploadId, { cause: error }) : error;
      });
      return { partNumber, etag: etagOf(stats), size };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async listParts(key: string, uploadId: string): Promise<UploadedPart[] | undefined> {
    let dir: string;
    try {
      dir = await this.#uploadDir(key, uploadId);
    } catch (error) {
      if (error instanceof UploadNotFoundError) return undefined;
      throw error;
    }
    const parts: UploadedPart[] = [];
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const match = /^part-(\d{5})$/.exec(name);
      if (!match) continue;
      const stats = await stat(path.join(dir, name), { bigint: true }).catch(() => undefined);
      if (stats) parts.push({ partNumber: Number(match[1]), etag: etagOf(stats), size: Number(stats.size) });
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  async completeUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<ObjectInfo> {
    const file = this.#pathOf(key);
    const dir = await this.#uploadDir(key, uploadId);
    const stored = new Map((await this.listParts(key, uploadId))?.map((p) => [p.partNumber, p]));
    let previous = 0;
    for (const part of parts) {
      if (part.partNumber <= previous) {
        throw new RangeError(`complete ${uploadId} (${key}): part numbers must ascend (${part.partNumber})`);
      }
      previous = part.partNumber;
      if (stored.get(part.partNumber)?.etag !== part.etag) {
        throw new RangeError(
          `complete ${uploadId} (${key}): part ${part.partNumber} with etag ${part.etag} is not stored`,
        );
      }
    }
    await mkdir(this.#tmpDir, { recursive: true });
    const tmp = path.join(this.#tmpDir, `${randomUUID()}.tmp`);
    let installed = false;
    try {
      const handle = await open(tmp, 'wx');
      let stats: BigIntStats;
      try {
        for (const part of parts) {
          for await (const chunk of createReadStream(path.join(dir, partFileName(part.partNumber)))) {
            await handle.write(chunk as Buffer);
          }
        }
        const mtime = (Date.now() + Math.random()) / 1000;
        await handle.utimes(mtime, mtime);
        await handle.sync();
        stats = await handle.stat({ bigint: true });
      } finally {
        await handle.close();
      }
      await this.#install(tmp, file, key);
      installed = true;
      await syncDirectory(path.dirname(file));
      await rm(dir, { recursive: true, force: true });
      return toObjectInfo(key, stats);
    } finally {
      if (!installed) await rm(tmp, { force: true });
    }
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    this.#pathOf(key);
    if (!isUploadId(uploadId)) return;
    await rm(path.join(this.#uploadsDir, uploadId), { recursive: true, force: true });
  }

  /** The directory of an upload in progress of `key`; `UploadNotFoundError` if there is none. */
  async #uploadDir(key: string, uploadId: string): Promise<string> {
    this.#pathOf(key);
    if (!isUploadId(uploadId)) throw new UploadNotFoundError(key, uploadId);
    const dir = path.join(this.#uploadsDir, uploadId);
    const storedKey = await readFile(path.join(dir, 'key'), 'utf8').catch(() => undefined);
    if (storedKey !== key) throw new UploadNotFoundError(key, uploadId);
    return dir;
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

  /** Throws `PreconditionFailedError` unless the key's current state satisfies the condition. */
  async #checkCondition(key: string, condition: Condition): Promise<void> {
    const current = await this.head(key);
    if (condition.kind === 'ifAbsent' ? current !== undefined : current?.etag !== condition.etag) {
      throw new PreconditionFailedError(key, condition.kind);
    }
  }

  /** Renames the finished temp file onto the key's path, creating parent directories as needed. */
  async #install(tmp: string, file: string, key: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await makeParent(file, key);
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

  /**
   * Gives the finished temp file the key's name only if no object has it: `link` fails with `EEXIST`
   * atomically, so of racing creators exactly one wins, and readers see the complete file or nothing.
   */
  async #installIfAbsent(tmp: string, file: string, key: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await makeParent(file, key);
      try {
        await link(tmp, file);
        return;
      } catch (error) {
        const code = errorCode(error);
        const retry = attempt < INSTALL_ATTEMPTS;
        // A concurrent delete pruned the parent directory between mkdir and link.
        if (code === 'ENOENT' && retry) continue;
        if (code === 'EEXIST') {
          const existing = await lstat(file).catch(() => undefined);
          if (!existing?.isDirectory()) throw new PreconditionFailedError(key, 'ifAbsent', { cause: error });
          // An empty leftover directory is no object; one with objects under it makes the key invalid.
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

  /** Runs `critical` holding the key's side lock, which serializes conditional replaces across processes. */
  async #withKeyLock<T>(key: string, critical: () => Promise<T>): Promise<T> {
    const lockFile = path.join(this.#lockDir, `${createHash('sha256').update(key).digest('hex')}.lock`);
    const deadline = Date.now() + LOCK_WAIT_MS;
    let ino: bigint | undefined;
    for (let attempt = 0; ino === undefined; attempt++) {
      try {
        const handle = await open(lockFile, 'wx');
        try {
          ino = (await handle.stat({ bigint: true })).ino;
          // For whoever finds a lock left behind: who held it, and since when.
          await handle.writeFile(`${hostname()} pid ${process.pid} ${new Date().toISOString()} ${key}\n`);
        } finally {
          await handle.close();
        }
      } catch (error) {
        const code = errorCode(error);
        if (code === 'ENOENT') {
          await mkdir(this.#lockDir, { recursive: true });
          continue;
        }
        if (code !== 'EEXIST') throw error;
        await breakIfStale(lockFile);
        if (Date.now() > deadline) {
          throw new TransientError(
            `${key}: the lock of a conditional write (${lockFile}) stayed taken for ${LOCK_WAIT_MS} ms`,
          );
        }
        // Full jitter, growing to 20 ms: the lock is held for a stat and a rename.
        await sleep(Math.random() * Math.min(20, 2 ** attempt));
      }
    }
    try {
      return await critical();
    } finally {
      // Remove the lock only if it is still ours (a lock broken as stale may have been taken anew).
      const current = await stat(lockFile, { bigint: true }).catch(() => undefined);
      if (current?.ino === ino) await rm(lockFile, { force: true });
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
 * The etag is `<size>-<mtime ns>-<inode>` (hex): cheap for any size, from one stat. Every write creates a
 * new file while the old one still exists (so a new inode) and installs it by rename or link, so the etag
 * changes on every write, even one with identical bytes. An inode freed by an overwrite can be reused by
 * a later write; the random sub-millisecond part `write` puts into the mtime keeps that later etag
 * different even on filesystems whose clock ticks in milliseconds. It is not a content hash, so equal
 * content in two files has different etags.
 */
function toObjectInfo(key: string, stats: BigIntStats): ObjectInfo {
  return { key, size: Number(stats.size), etag: etagOf(stats), lastModified: stats.mtime };
}

function etagOf(stats: BigIntStats): string {
  return `${stats.size.toString(16)}-${stats.mtimeNs.toString(16)}-${stats.ino.toString(16)}`;
}

/** Upload ids are the UUIDs `startUpload` makes; anything else could name a path outside the uploads. */
function isUploadId(uploadId: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uploadId);
}

function assertPartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MULTIPART_LIMITS.maxParts) {
    throw new RangeError(
      `part number ${partNumber} is not an integer from 1 to ${MULTIPART_LIMITS.maxParts}`,
    );
  }
}

function partFileName(partNumber: number): string {
  return `part-${String(partNumber).padStart(5, '0')}`;
}

type Condition = { readonly kind: 'ifAbsent' } | { readonly kind: 'ifMatch'; readonly etag: string };

function conditionOf(options: WriteOptions | undefined): Condition | undefined {
  if (options?.ifAbsent && options.ifMatch !== undefined) {
    throw new TypeError('write: ifAbsent and ifMatch exclude each other');
  }
  if (options?.ifAbsent) return { kind: 'ifAbsent' };
  if (options?.ifMatch !== undefined) return { kind: 'ifMatch', etag: options.ifMatch };
  return undefined;
}

/** A rejection handler that releases a stream body the write will not read, then rethrows. */
function releaseBody(body: Uint8Array | string | Readable): (error: unknown) => never {
  return (error) => {
    if (body instanceof Readable) body.destroy();
    throw error;
  };
}

/** Creates the directories above a key's file; a file in their place means the key cannot exist. */
async function makeParent(file: string, key: string): Promise<void> {
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
}

/**
 * Removes a key lock older than `LOCK_STALE_MS`. It moves the lock aside under a unique name first and
 * checks that what it moved is the inode it judged stale: if another writer broke it and took a fresh
 * lock in between, that fresh lock is put back instead of being removed.
 */
async function breakIfStale(lockFile: string): Promise<void> {
  const judged = await stat(lockFile, { bigint: true }).catch(() => undefined);
  if (!judged || Date.now() - Number(judged.mtimeMs) < LOCK_STALE_MS) return;
  const aside = `${lockFile}.${randomUUID()}.stale`;
  try {
    await rename(lockFile, aside);
  } catch (error) {
    if (isMissing(error)) return; // someone else broke it first
    throw error;
  }
  const moved = await stat(aside, { bigint: true }).catch(() => undefined);
  if (moved && moved.ino !== judged.ino) await link(aside, lockFile).catch(() => {});
  await rm(aside, { force: true });
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

/** How full the filesystem holding `dir` is, for a DiskFullError. */
async function describeFreeSpace(dir: string): Promise<string> {
  try {
    const fs = await statfs(dir);
    const mb = (blocks: number) => `${((blocks * fs.bsize) / 1e6).toFixed(1)} MB`;
    return `${mb(fs.bavail)} free of ${mb(fs.blocks)} on the filesystem of ${dir}`;
  } catch {
    return `the filesystem of ${dir} is full`;
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
