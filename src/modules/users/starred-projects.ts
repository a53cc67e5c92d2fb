/**
 * The one reading of a user's `github_star` value (SPEC §3 and §5: "split on `,`, trimmed"), shared by
 * `isStar`, the starred-projects push, the `github-star` condition and its SQL translation — so that a
 * user the condition says has starred a project is the one `isStar` says has.
 */

/**
 * The white space trimmed around items. Spelled out (not String#trim, which also strips no-break and
 * other Unicode spaces) so that the SQL translation trims exactly the same characters.
 */
export const STAR_ITEM_WHITESPACE = ' \t\n\r\v\f';

export function trimStarItem(item: string): string {
  let start = 0;
  let end = item.length;
  while (start < end && STAR_ITEM_WHITESPACE.includes(item[start]!)) start += 1;
  while (end > start && STAR_ITEM_WHITESPACE.includes(item[end - 1]!)) end -= 1;
  return item.slice(start, end);
}

/** The items of a `github_star` value: split on commas, trimmed, empties dropped. */
export function starredProjects(githubStar: string | null | undefined): string[] {
  if (!githubStar) return [];
  return githubStar
    .split(',')
    .map(trimStarItem)
    .filter((item) => item !== '');
}

/** Whether one item of a `github_star` value equals the project. */
export function hasStarred(githubStar: string | null | undefined, project: string): boolean {
  if (githubStar == null) return false;
  return githubStar.split(',').some((item) => trimStarItem(item) === project);
}
