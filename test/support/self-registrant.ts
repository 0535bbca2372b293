/**
 * A separate process that registers itself with `registerSelf` (default
 * check: a session it holds), as a service would: `node --import tsx
 * test/support/self-registrant.ts <address> <key>`. Prints "registered <id>"
 * once registerSelf resolved (its session is open), then lives until killed.
 */
import { registerSelf } from "../../src/client/register-self.js";

const [address, key] = process.argv.slice(2);
if (!address || !key) throw new Error("usage: self-registrant <address> <key>");
const self = await registerSelf({ connection: { addresses: [address] }, key, serviceType: "svc", host: "127.0.0.1", port: 1 });
process.stdout.write(`registered ${self.id}\n`);
// The open session keeps the process alive; the interval makes that independent of grpc-js's handles.
setInterval(() => undefined, 60_000);
