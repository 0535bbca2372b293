/**
 * A separate process holding one KeepAlive session, as a service using the
 * registry would: `node --import tsx test/support/session-holder.ts <address>
 * <instance id> <token>`. Prints "open <revision>" once the registry accepted
 * the session, then holds it until killed (a test SIGKILLs or SIGSTOPs it).
 */
import { credentials, Metadata } from "@grpc/grpc-js";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";

const [address, id, token] = process.argv.slice(2);
if (!address || !id || !token) throw new Error("usage: session-holder <address> <instance id> <token>");
const client = new RegistryServiceClient(address, credentials.createInsecure());
const metadata = new Metadata();
metadata.set("x-service-id", id);
metadata.set("x-service-token", token);
const stream = client.keepAlive(metadata);
let announced = false;
stream.on("data", (response: { revision: number }) => {
  if (announced) return;
  announced = true;
  process.stdout.write(`open ${response.revision}\n`);
});
stream.on("error", (err) => {
  process.stderr.write(`session ended: ${err.message}\n`);
  process.exit(2);
});
stream.write({ instanceId: id });
