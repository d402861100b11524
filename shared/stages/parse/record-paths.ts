import { ConfigError } from '../../errors.ts';

/**
 * Where records and header values live inside a document, compiled into a trie of object keys.
 *
 * Syntax (deliberately small): `in_network[*]` — the elements of the array under the root key
 * `in_network`; `data.items[*]` — nested keys separated by dots; `[*]` — the elements of a root array.
 * Header paths are plain key paths: `reporting_entity_name`, `plan.id`.
 */
export interface PathNode {
  readonly children: Map<string, PathNode>;
  /** Index into the record targets when the value at this node is an array of records. */
  recordTarget: number;
  /** Index into the header targets when the value at this node is a header value. */
  headerTarget: number;
  /** Position in `CompiledPaths.nodes`: how a scanner checkpoint names a node. */
  readonly id: number;
}

export interface CompiledPaths {
  readonly root: PathNode;
  readonly recordNames: readonly string[];
  readonly headerNames: readonly string[];
  /** Every node of the trie, indexed by `id`. */
  readonly nodes: readonly PathNode[];
}

const KEY = /^[^.[\]]+$/;

function newNode(nodes: PathNode[]): PathNode {
  const node: PathNode = { children: new Map(), recordTarget: -1, headerTarget: -1, id: nodes.length };
  nodes.push(node);
  return node;
}

function keysOf(path: string, what: string): string[] {
  if (path === '') return [];
  const keys = path.split('.');
  for (const key of keys) {
    if (!KEY.test(key)) {
      throw new ConfigError(
        `${what} "${path}": "${key}" is not a valid key segment. Use dot-separated object keys, e.g. "plan.id".`,
      );
    }
  }
  return keys;
}

function nodeAt(root: PathNode, keys: readonly string[], nodes: PathNode[]): PathNode {
  let node = root;
  for (const key of keys) {
    let child = node.children.get(key);
    if (!child) {
      child = newNode(nodes);
      node.children.set(key, child);
    }
    node = child;
  }
  return node;
}

/** The record name used in counts and keys: the last key of the path (`in_network`), or `records` for `[*]`. */
export function defaultRecordName(path: string): string {
  const keys = keysOf(path.replace(/\[\*\]$/, ''), 'record path');
  return keys.at(-1) ?? 'records';
}

/** Compile record paths (`a.b[*]`) and header paths (`a.b`) into one trie, checking for conflicts. */
export function compilePaths(
  records: readonly { name: string; path: string }[],
  headers: readonly { name: string; path: string }[],
): CompiledPaths {
  const nodes: PathNode[] = [];
  const root = newNode(nodes);
  records.forEach(({ path }, index) => {
    if (!path.endsWith('[*]')) {
      throw new ConfigError(`record path "${path}" must end with [*], e.g. "in_network[*]".`);
    }
    const node = nodeAt(root, keysOf(path.slice(0, -3), 'record path'), nodes);
    if (node.recordTarget >= 0) throw new ConfigError(`record path "${path}" is listed twice.`);
    node.recordTarget = index;
  });
  headers.forEach(({ path }, index) => {
    const keys = keysOf(path, 'header path');
    if (keys.length === 0) throw new ConfigError('a header path must name at least one key.');
    const node = nodeAt(root, keys, nodes);
    if (node.headerTarget >= 0) throw new ConfigError(`header path "${path}" is listed twice.`);
    if (node.recordTarget >= 0) throw new ConfigError(`"${path}" cannot be both a header and a record path.`);
    node.headerTarget = index;
  });
  return {
    root,
    recordNames: records.map((r) => r.name),
    headerNames: headers.map((h) => h.name),
    nodes,
  };
}
