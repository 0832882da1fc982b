// Child-process entry of the load generator: `node loadgen-main.js '<LoadJob JSON>'` prints one
// LoadResult JSON line. A separate process, so its CPU time is measured apart from the
// daemons' and its busy loop competes with them only as a guest vCPU would.
import { runLoad, type LoadJob } from './loadgen.js';

try {
  const job = JSON.parse(process.argv[2] ?? '') as LoadJob;
  const result = await runLoad(job);
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (err) {
  process.stderr.write(`load generator: ${(err as Error).message}\n`);
  // Exit now: the front-end's socket and pollers of a failed run would keep the process (and
  // the benchmark waiting for it) alive forever.
  process.exit(1);
}
