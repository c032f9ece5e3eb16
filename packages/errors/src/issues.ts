/**
 * One way to put schema problems into an error message: every issue, each with its path, so the
 * caller can fix them all in one go. Typed structurally (zod's issues fit), so this package needs
 * no schema library.
 */
export interface SchemaIssue {
  readonly path: ReadonlyArray<PropertyKey>;
  readonly message: string;
}

/**
 * `a.b: message; c.0: message`. `prefix` is joined in front of each path (`source.config`), and an
 * issue about the whole value is shown under the prefix alone, or under `(root)` without one.
 */
export function formatIssues(issues: readonly SchemaIssue[], prefix = ''): string {
  return issues
    .map((issue) => {
      const where = [prefix, ...issue.path.map(String)].filter((part) => part !== '').join('.');
      return `${where === '' ? '(root)' : where}: ${issue.message}`;
    })
    .join('; ');
}
