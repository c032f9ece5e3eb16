/**
 * Which TCP sockets a process is listening on, read from Linux's /proc: the agent must never
 * open an inbound port, and this lets a test prove it for a live agent process.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';

const LISTEN = '0A';

async function listeningInodes(): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const columns = line.trim().split(/\s+/);
      const state = columns[3];
      const inode = columns[9];
      if (state === LISTEN && inode !== undefined) inodes.add(inode);
    }
  }
  return inodes;
}

/** The number of listening TCP sockets among the open file descriptors of `pid`. */
export async function listeningSocketCount(pid: number): Promise<number> {
  const listening = await listeningInodes();
  let count = 0;
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode !== undefined && listening.has(inode)) count += 1;
  }
  return count;
}
