/**
 * Lists handed to DuckDB as one joined text per row instead of one value per element.
 *
 * The appender takes list elements one native call each: `provider_group_ids` alone is ~29 M strings in a
 * 1 GB TiC file, and list columns were ~20 % of a silver group's time. A list whose elements join and
 * split back exactly travels as text in a VARCHAR staging column and becomes a list again in the
 * partial file's COPY (`string_split`, then a cast); any other list (null elements, a separator inside an
 * element, `['']`, -0, NaN, ±Infinity, bigints) takes a second staging column of the real list type, so
 * every value arrives exactly as before.
 */

export type ListElement = 'VARCHAR' | 'BIGINT' | 'DOUBLE';

/** ASCII unit separator: joins text elements (a list with one inside goes the exact way). */
const TEXT_SEPARATOR = '\u001f';

/**
 * The list as one text that `joinedListSql` turns back into exactly this list, or undefined when it
 * cannot: then it goes to the list staging column (which also reports wrong element types).
 */
export function joinList(element: ListElement, items: readonly unknown[]): string | undefined {
  if (element === 'VARCHAR') {
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (typeof item !== 'string' || item.includes(TEXT_SEPARATOR)) return undefined;
    }
    // `['']` joins to '' like `[]`: the exact way keeps them apart.
    if (items.length === 1 && items[0] === '') return undefined;
    return items.join(TEXT_SEPARATOR);
  }
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    // Number → text → number is exact for safe integers and finite doubles (shortest round trip), but
    // not for -0 (prints as 0); bigints and the rest are checked and converted by the exact way.
    if (typeof item !== 'number' || !Number.isFinite(item) || Object.is(item, -0)) return undefined;
    if (element === 'BIGINT' && !Number.isSafeInteger(item)) return undefined;
  }
  return items.join(',');
}

/** SQL of the list from its staging columns: the joined text when there is one, else the exact list. */
export function joinedListSql(element: ListElement, joined: string, exact: string): string {
  const split =
    element === 'VARCHAR' ? `string_split(${joined}, chr(31))` : `string_split(${joined}, ',')::${element}[]`;
  return `CASE WHEN ${joined} IS NULL THEN ${exact} WHEN ${joined} = '' THEN []::${element}[] ELSE ${split} END`;
}
