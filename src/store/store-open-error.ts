/**
 * A store could not be opened at start-up (a data directory that cannot be
 * created, a database that cannot be read, an etcd that cannot be reached).
 * The CLI prints its message as the one line an operator needs, and exits 2.
 */
export class StoreOpenError extends Error {
  override readonly name: string = "StoreOpenError";
}
