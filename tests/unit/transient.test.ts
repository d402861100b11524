import { describe, expect, it } from 'vitest';
import { asTransient, isTransient, withTransientErrors } from '../../shared/adapters/aws/transient.ts';
import { MalformedInputError, ObjectNotFoundError, TransientError } from '../../shared/errors.ts';
import { TRANSIENT_ERRORS } from '../../shared/workflow/definition.ts';

/** An error like Node's for a failed socket. */
const networkError = (code: string) => Object.assign(new Error(`connect ${code} 10.0.0.1:443`), { code });
/** An error like an AWS SDK service exception. */
const sdkError = (name: string, extra: Record<string, unknown> = {}) =>
  Object.assign(new Error(`${name} from S3`), { name, $metadata: { httpStatusCode: 503 }, ...extra });

describe('Function: isTransient', () => {
  it.each(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNREFUSED', 'EAI_AGAIN'])(
    'takes %s as transient',
    (code) => {
      expect(isTransient(networkError(code))).toBe(true);
    },
  );

  it.each(['TimeoutError', 'SlowDown', 'InternalError', 'ServiceUnavailable'])(
    'takes the SDK error %s as transient',
    (name) => {
      expect(isTransient(sdkError(name))).toBe(true);
    },
  );

  it('takes any SDK error the SDK marks $retryable as transient', () => {
    expect(isTransient(sdkError('ThrottlingException', { $retryable: { throttling: true } }))).toBe(true);
  });

  it('finds a network failure wrapped in the cause of another error', () => {
    const wrapped = new Error('upload failed', {
      cause: new Error('socket', { cause: networkError('EPIPE') }),
    });
    expect(isTransient(wrapped)).toBe(true);
  });

  it("keeps sluice's own verdict: permanent errors stay permanent whatever they wrap", () => {
    const malformed = new MalformedInputError('s3://b/k', 10, 'unexpected end', {
      cause: networkError('ECONNRESET'),
    });
    expect(isTransient(malformed)).toBe(false);
    expect(isTransient(new ObjectNotFoundError('k'))).toBe(false);
    expect(isTransient(new TransientError('try later'))).toBe(true);
  });

  it('takes other errors and non-errors as permanent', () => {
    expect(isTransient(sdkError('AccessDenied'))).toBe(false);
    expect(isTransient(networkError('ENOENT'))).toBe(false);
    expect(isTransient('ECONNRESET')).toBe(false);
    expect(isTransient(undefined)).toBe(false);
  });
});

describe('Function: asTransient', () => {
  it('wraps a transient failure into a TransientError that keeps it as the cause', () => {
    const reset = networkError('ECONNRESET');
    const wrapped = asTransient(reset) as TransientError;
    expect(wrapped).toBeInstanceOf(TransientError);
    expect(wrapped.name).toBe('TransientError');
    expect(wrapped.cause).toBe(reset);
    expect(wrapped.message).toContain('ECONNRESET');
  });

  it('returns permanent errors and TransientErrors unchanged', () => {
    const denied = sdkError('AccessDenied');
    expect(asTransient(denied)).toBe(denied);
    const transient = new TransientError('x');
    expect(asTransient(transient)).toBe(transient);
  });

  it('produces a name the state machine retries', () => {
    expect(TRANSIENT_ERRORS).toContain((asTransient(networkError('ETIMEDOUT')) as Error).name);
  });
});

describe('Function: withTransientErrors', () => {
  it('passes results through and rethrows failures mapped', async () => {
    await expect(withTransientErrors(async () => 42)).resolves.toBe(42);
    await expect(
      withTransientErrors(async () => {
        throw sdkError('SlowDown');
      }),
    ).rejects.toBeInstanceOf(TransientError);
    const malformed = new MalformedInputError('f', 0, 'bad');
    await expect(
      withTransientErrors(async () => {
        throw malformed;
      }),
    ).rejects.toBe(malformed);
  });
});
