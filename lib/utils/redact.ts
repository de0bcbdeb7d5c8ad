/**
 * Replaces the password of a URL-like string with `***` so it can be logged or thrown.
 * Works on strings `new URL` rejects, too: anything between `//user:` and `@` is masked.
 */
export function redactUrl(text: string): string {
  return text.replace(/(\/\/[^/@:\s]*:)[^\s]*@/g, '$1***@');
}
