#!/usr/bin/env node
// Installed command: runs the compiled CLI (npm ci / npm run build produce dist/).
import { main } from '../dist/cli/main.js';

// `vhost-user-zbd report IMG | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err) => { if (err.code === 'EPIPE') process.exit(0); throw err; });
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
