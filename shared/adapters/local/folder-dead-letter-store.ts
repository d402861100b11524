import { InvalidKeyError } from '../../errors.ts';
import { type DeadLetter, type DeadLetterStore, deadLetterId } from '../../ports/dead-letter-store.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { FailureMessage } from '../../workflow/stage-io.ts';
import { FileObjectStore } from './file-object-store.ts';

/** The lake prefix of the local runner's dead letters: `<lake>/_dead_letters/<execution-name>.json`. */
export const DEAD_LETTERS_PREFIX = '_dead_letters/';

/** What execution names are made of (shared/workflow/execution.ts): safe as a file name. */
const ID = /^[A-Za-z0-9_-]{1,80}$/;

/**
 * Dead letters as JSON files in the lake, one per failed execution, named after the execution. A new
 * failure of the same object version (same execution name) replaces its letter. Writes are atomic (the
 * object store's), so a reader never sees half a letter.
 */
export class FolderDeadLetterStore implements DeadLetterStore {
  readonly location: string;
  readonly #store: ObjectStore;

  /** The dead letters of the lake at `lake`: a folder, or the lake's store (a folder's or a bucket's). */
  constructor(lake: string | ObjectStore) {
    this.#store = typeof lake === 'string' ? new FileObjectStore(lake) : lake;
    const probe = `${DEAD_LETTERS_PREFIX}letter.json`;
    this.location = this.#store.uri(probe).slice(0, -'letter.json'.length);
  }

  async record(message: FailureMessage): Promise<DeadLetter> {
    const letter: DeadLetter = {
      id: deadLetterId(message.executionId),
      ...FailureMessage.parse(message),
      recordedAt: new Date().toISOString(),
    };
    await this.#store.write(keyOf(letter.id), `${JSON.stringify(letter, null, 2)}\n`, {
      contentType: 'application/json',
    });
    return letter;
  }

  async list(): Promise<DeadLetter[]> {
    const letters: DeadLetter[] = [];
    for await (const object of this.#store.list(DEAD_LETTERS_PREFIX)) {
      if (!object.key.endsWith('.json')) continue;
      const letter = await this.get(object.key.slice(DEAD_LETTERS_PREFIX.length, -'.json'.length));
      if (letter) letters.push(letter);
    }
    return letters.sort((a, b) => (a.recordedAt ?? '').localeCompare(b.recordedAt ?? ''));
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of await this.#store.read(keyOf(id))) chunks.push(chunk as Buffer);
    } catch (error) {
      if ((error as Error).name === 'ObjectNotFoundError') return undefined;
      throw error;
    }
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as DeadLetter;
    return { ...value, ...FailureMessage.parse(value), id };
  }

  async remove(id: string): Promise<boolean> {
    const key = keyOf(id);
    if (!(await this.#store.head(key))) return false;
    await this.#store.delete(key);
    return true;
  }
}

function keyOf(id: string): string {
  if (!ID.test(id)) throw new InvalidKeyError(id, 'a dead letter id is an execution name: A-Z a-z 0-9 - _');
  return `${DEAD_LETTERS_PREFIX}${id}.json`;
}
