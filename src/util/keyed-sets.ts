/** Maps of sets (who follows what): add, remove (dropping an empty set), take all. */

export function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
}

export function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  set?.delete(value);
  if (set?.size === 0) map.delete(key);
}

/** Removes `key` and answers what its set held. */
export function takeAll<K, V>(map: Map<K, Set<V>>, key: K): V[] {
  const set = map.get(key);
  map.delete(key);
  return set ? [...set] : [];
}
