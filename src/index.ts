#!/usr/bin/env node
/**
 * The server's entry point, as the seed's README runs it: `tsx src/index.ts`
 * (and `nodemon -x tsx src/index.ts` in development). It is the CLI with its
 * arguments, so with none it serves; `tsx src/index.ts --port 5000` passes
 * flags as `service-registry serve` does.
 *
 * The library is `src/lib.ts` (the package's main export), so importing
 * the package never starts a server.
 */
import "./cli/main.js";
