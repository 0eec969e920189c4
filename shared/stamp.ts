/** A sortable UTC timestamp for run folder names, e.g. 20261127-142940. */
export function runStamp(date = new Date()): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}
