import { randomFillSync } from "node:crypto";

const HEX = Buffer.from("0123456789abcdef", "latin1");
const ID_BYTES = 16;
/** Random bytes for the next 256 ids, drawn in one call (as Node does for randomUUID). */
const pool = Buffer.allocUnsafeSlow(ID_BYTES * 256);
let poolOffset = pool.length;
/** The id's text is written here, then copied out as one flat string. */
const text = Buffer.allocUnsafeSlow(36);

/**
 * A new instance id: a time-ordered UUID (version 7, RFC 9562): 48 bits of
 * Unix milliseconds, then 74 random bits, lowercase.
 *
 * Time order is for stores keyed by the id: ids made one after another sort
 * together, so such a B-tree takes them at its end (a page or two per
 * commit) instead of in a random page each (a large share of SQLite's CPU
 * per registration when its table was keyed by id, schema 2).
 * SQLite's table is keyed by integer row keys since schema 3 and no longer
 * depends on it; etcd's keys (prefix + id) still sort by it. Ids are not
 * secrets (every GetByType answer lists them); tokens are.
 *
 * Written byte by byte and read out as latin1 in one piece, so the string is
 * flat: `randomUUID()` concatenates its answer, which V8 keeps as a tree of
 * ~14 string pieces (~450 bytes, for as long as the instance lives).
 */
export function newInstanceId(now = Date.now()): string {
  if (poolOffset === pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const at = poolOffset;
  poolOffset += ID_BYTES;
  pool.writeUIntBE(now, at, 6);
  pool[at + 6] = ((pool[at + 6] as number) & 0x0f) | 0x70; // version 7
  pool[at + 8] = ((pool[at + 8] as number) & 0x3f) | 0x80; // RFC 9562 variant
  let o = 0;
  for (let i = 0; i < ID_BYTES; i++) {
    if (o === 8 || o === 13 || o === 18 || o === 23) text[o++] = 0x2d; // "-"
    const byte = pool[at + i] as number;
    text[o++] = HEX[byte >> 4] as number;
    text[o++] = HEX[byte & 15] as number;
  }
  return text.toString("latin1", 0, 36);
}
