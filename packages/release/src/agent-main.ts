// The one-file agent's entry point: CommonJS has no top-level await, and main sets the exit code.
import { main } from '@airlock/agent/cli';

void main(process.argv);
