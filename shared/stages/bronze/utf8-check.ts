import { isUtf8 } from 'node:buffer';
import { MalformedInputError } from '../../errors.ts';

/**
 * The chunks of a text input, unchanged, failing at the first byte that is not UTF-8. A decoder would
 * turn such a byte (a Latin-1 `é`, a UTF-16 file) into U+FFFD, and the run would pass with its values
 * changed; the JSON scanner checks this itself, a CSV reader does not. `isUtf8` checks each chunk at
 * memory speed; a sequence split between two chunks is carried over to the next.
 */
export async function* utf8Checked(
  chunks: AsyncIterable<Buffer>,
  uri: string,
  /** The input was cut short on purpose (inspect's byte limit): a sequence cut at its end is expected. */
  stoppedEarly: () => boolean = () => false,
): AsyncIterable<Buffer> {
  let carried: Buffer | undefined;
  let offset = 0; // of the first byte of `carried`, or of the next chunk
  for await (const chunk of chunks) {
    const bytes = carried ? Buffer.concat([carried, chunk]) : chunk;
    const complete = completeLength(bytes);
    const head = bytes.subarray(0, complete);
    if (!isUtf8(head)) fail(uri, offset, head, firstInvalidByte(head));
    carried = complete < bytes.length ? Buffer.from(bytes.subarray(complete)) : undefined;
    offset += complete;
    yield chunk;
  }
  if (carried && !stoppedEarly()) fail(uri, offset, carried, 0, 'the input ends inside a UTF-8 sequence');
}

function fail(uri: string, offset: number, bytes: Buffer, at: number, what?: string): never {
  const byte = `0x${bytes[at]!.toString(16).padStart(2, '0')}`;
  throw new MalformedInputError(
    uri,
    offset + at,
    `${what ?? `byte ${byte} is not UTF-8`}: the input must be UTF-8 (a Latin-1 or Windows-1252 ` +
      'export, or a UTF-16 file, is not); convert it first, e.g. `iconv -f WINDOWS-1252 -t UTF-8`',
  );
}

/** The length of `bytes` without a multi-byte sequence that its last bytes start but do not finish. */
function completeLength(bytes: Buffer): number {
  for (let back = 1; back <= 3 && back <= bytes.length; back++) {
    const c = bytes[bytes.length - back]!;
    if (c < 0x80) return bytes.length; // ASCII: nothing open
    if (c >= 0xc0) return sequenceLength(c) > back ? bytes.length - back : bytes.length; // a lead byte
  }
  return bytes.length; // only continuation bytes: complete, or invalid (isUtf8 says which)
}

/** How many bytes a sequence with this lead byte has (an invalid lead counts as 1: isUtf8 rejects it). */
function sequenceLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 1;
}

/** The index of the first byte of `bytes` (which isUtf8 rejected) where its UTF-8 goes wrong. */
function firstInvalidByte(bytes: Buffer): number {
  let i = 0;
  while (i < bytes.length) {
    const length = bytes[i]! < 0x80 ? 1 : sequenceLength(bytes[i]!);
    if (length === 1 && bytes[i]! >= 0x80) return i;
    if (!isUtf8(bytes.subarray(i, i + length))) return i;
    i += length;
  }
  return 0;
}
