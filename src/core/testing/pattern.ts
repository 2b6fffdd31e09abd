/** Regular-expression source that matches `text` literally: every character with a meaning in a pattern escaped. */
export function literally(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
