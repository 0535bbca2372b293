import { hasEtcd } from "../support/etcd-process.js";

/**
 * Whether the etcd suites run: always in CI (where .ci/run installs
 * etcd-server, and a missing etcd is a failure), elsewhere when `etcd` is on
 * the PATH, saying plainly when they are skipped.
 */
export const etcdPresent = hasEtcd();
if (!etcdPresent) {
  if (process.env.CI) throw new Error("etcd is not on the PATH: CI must install etcd-server (see .ci/run)");
  console.warn("[etcd suites skipped] no `etcd` on the PATH; install Debian's etcd-server to run them");
}
