import { fileURLToPath } from "node:url";
import {
  loadPackageDefinition,
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  type ServiceDefinition,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

/** The example's gRPC contract, loaded at run time from greeter.proto (no code generation). */
const definition = loadSync(fileURLToPath(new URL("./greeter.proto", import.meta.url)), { keepCase: false, defaults: true });
const loaded = loadPackageDefinition(definition) as unknown as {
  example: { greeter: { v1: { GreeterService: GreeterServiceConstructor } } };
};

export interface SayHelloRequest {
  name: string;
  /** Answer after this long (ms); 0 at once. */
  delayMs?: number;
}

export interface SayHelloResponse {
  message: string;
  backend: string;
}

/** A GreeterService client (proto-loader's dynamic client, typed for this example). */
export interface GreeterClient extends Client {
  sayHello(
    request: SayHelloRequest,
    options: { deadline?: number },
    callback: (error: ServiceError | null, response: SayHelloResponse) => void,
  ): void;
}

interface GreeterServiceConstructor {
  new (target: string, credentials: ChannelCredentials, options?: ChannelOptions): GreeterClient;
  service: ServiceDefinition;
}

/** Service definition, for `server.addService`. */
export const greeterService: ServiceDefinition = loaded.example.greeter.v1.GreeterService.service;

/** A client for `target`, e.g. `registry:///greeter`. */
export function greeterClient(target: string, credentials: ChannelCredentials, options?: ChannelOptions): GreeterClient {
  return new loaded.example.greeter.v1.GreeterService(target, credentials, options);
}

/** Promise form of SayHello. */
export function sayHello(client: GreeterClient, name: string, deadlineMs = 2000, delayMs = 0): Promise<SayHelloResponse> {
  return new Promise((resolve, reject) => {
    client.sayHello({ name, delayMs }, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}
