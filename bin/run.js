#!/usr/bin/env -S node --max-semi-space-size=8
// The young generation at 8 MiB per semi-space instead of V8's 16: a peer receiving a large file
// allocates a short-lived object or two per datagram, and the larger young generation alone took
// a receiver from about 105 MiB to as much as 136 MiB of RSS at 10 % loss, for no measurable gain
// in time (npm run bench -- files, BENCHMARKS.md).
import { execute } from '@oclif/core';

await execute({ dir: import.meta.url });
