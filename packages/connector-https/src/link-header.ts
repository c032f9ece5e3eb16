/**
 * The `rel="next"` target of an RFC 8288 `Link` header: `<https://…?page=2>; rel="next", <…>; rel="last"`.
 * Parameter values may be quoted and hold commas or semicolons; `rel` may list several relation
 * types separated by spaces. The target is resolved against the URL the page came from.
 */

interface LinkValue {
  target: string;
  params: Map<string, string>;
}

function parse(header: string): LinkValue[] {
  const links: LinkValue[] = [];
  let i = 0;
  const skip = (chars: string) => {
    while (i < header.length && chars.includes(header.charAt(i))) i += 1;
  };
  while (i < header.length) {
    skip(' \t,');
    if (header.charAt(i) !== '<') break;
    const close = header.indexOf('>', i);
    if (close < 0) break;
    const link: LinkValue = { target: header.slice(i + 1, close), params: new Map() };
    i = close + 1;
    for (;;) {
      skip(' \t');
      if (header.charAt(i) !== ';') break;
      i += 1;
      skip(' \t');
      const nameStart = i;
      while (i < header.length && !'=;, \t'.includes(header.charAt(i))) i += 1;
      const name = header.slice(nameStart, i).toLowerCase();
      skip(' \t');
      let value = '';
      if (header.charAt(i) === '=') {
        i += 1;
        skip(' \t');
        if (header.charAt(i) === '"') {
          i += 1;
          while (i < header.length && header.charAt(i) !== '"') {
            if (header.charAt(i) === '\\') i += 1;
            value += header.charAt(i);
            i += 1;
          }
          i += 1;
        } else {
          const valueStart = i;
          while (i < header.length && !';, \t'.includes(header.charAt(i))) i += 1;
          value = header.slice(valueStart, i);
        }
      }
      // The first occurrence of a parameter counts (RFC 8288, 3.3).
      if (name !== '' && !link.params.has(name)) link.params.set(name, value);
    }
    links.push(link);
    skip(' \t');
    if (header.charAt(i) !== ',' && i < header.length) break;
  }
  return links;
}

/** The absolute URL of the `next` link, or undefined when there is none. */
export function nextLink(header: string | undefined, base: string): string | undefined {
  if (header === undefined || header === '') return undefined;
  for (const link of parse(header)) {
    const rels = (link.params.get('rel') ?? '').toLowerCase().split(/\s+/);
    if (rels.includes('next')) return new URL(link.target, base).href;
  }
  return undefined;
}
