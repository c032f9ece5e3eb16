/**
 * Process set-up shared by the bench CLIs. A signal exits through `process.exit`, so the fixtures'
 * exit hooks still kill their sshd and remove their directories; a closed stdout or stderr (the
 * output piped into `head`) drops the output instead of raising an error on every later write.
 */
export function setUpCli(): void {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => process.exit(code));
  }
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
}
