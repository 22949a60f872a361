/**
 * Messages built from input data (a CSV header, a line, a value) must stay small: a 10 MB header repeated in every
 * worker's error message and log line once grew logs to 3.3 GB in minutes (issue 17). Everything that puts input
 * text into a message, an error row or a log line goes through `boundText`.
 */

/** Longest message of an error row or a thrown input error. */
export const MAX_MESSAGE_CHARS = 2000;
/** Longest string field of a log line. */
export const MAX_LOG_STRING_CHARS = 8000;

/**
 * `text` unchanged when at most `max` characters, else its head and tail with the number of characters left out
 * between them, so both the start (usually what is wrong) and the end (usually the hint) survive.
 */
export function boundText(text: string, max = MAX_MESSAGE_CHARS): string {
  if (text.length <= max) return text;
  const marker = (omitted: number): string => ` …[${omitted} characters omitted]… `;
  const room = Math.max(0, max - marker(text.length).length);
  const head = Math.ceil((room * 3) / 4);
  const tail = room - head;
  return `${text.slice(0, head)}${marker(text.length - head - tail)}${tail > 0 ? text.slice(-tail) : ''}`;
}
