// The packaged control plane's entry point (/usr/lib/airlock/control-plane/cli.js).
import { main } from '@airlock/control-plane/cli';

await main(process.argv);
