// Writes oclif.manifest.json after a build. Without it, oclif imports every command file at every
// start to learn the command list and flags, so each command would pay for the heaviest one.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Plugin } from '@oclif/core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const plugin = new Plugin({
  root,
  type: 'core',
  isRoot: true,
  ignoreManifest: true,
  errorOnManifestCreate: true,
});
await plugin.load();
writeFileSync(path.join(root, 'oclif.manifest.json'), JSON.stringify(plugin.manifest));
console.log(`oclif.manifest.json: ${Object.keys(plugin.manifest.commands).length} commands`);
