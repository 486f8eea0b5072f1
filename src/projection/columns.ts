/**
 * A batch's rows for one set-based statement: pushed one object per row, handed to the statement as one
 * array per column, in the statement's parameter order (for `unnest($1::…[], $2::…[], …)`).
 */
export class Columns<Row extends Record<string, unknown>> {
  readonly rows: Row[] = [];
  constructor(private readonly columns: ReadonlyArray<keyof Row>) {}
  get length(): number {
    return this.rows.length;
  }
  push(row: Row): void {
    this.rows.push(row);
  }
  values(): unknown[][] {
    return this.columns.map((column) => this.rows.map((row) => row[column]));
  }
}
