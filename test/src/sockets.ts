/**
 * Which TCP sockets a process is listening on, read from Linux's /proc: the agent must never
 * open an inbound port, and this lets a test prove it for a live agent process. Also which of our
 * own children serves a port, so a fault test can kill exactly that server mid-transfer.
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

/** The inode of the socket listening on 127.0.0.1:`port`, from /proc/net/tcp. */
async function listeningInode(port: number): Promise<string | undefined> {
  const text = await readFile('/proc/net/tcp', 'utf8');
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of text.split('\n').slice(1)) {
    const columns = line.trim().split(/\s+/);
    if (columns[1] === local && columns[3] === LISTEN) return columns[9];
  }
  return undefined;
}

async function parentOf(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
  const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
  return ppid === undefined ? undefined : Number(ppid);
}

/**
 * The process among this process's own children that listens on 127.0.0.1:`port`. Limited to our
 * children so a test can never pick, and then signal, someone else's server.
 */
export async function childListeningOn(port: number): Promise<number | undefined> {
  const inode = await listeningInode(port);
  if (inode === undefined) return undefined;
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || (await parentOf(pid)) !== process.pid) continue;
    for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === `socket:[${inode}]`) return pid;
    }
  }
  return undefined;
}

/** `pid` and all its descendants, parents first. */
export async function processTree(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    const child = Number(name);
    if (!Number.isInteger(child)) continue;
    const parent = await parentOf(child);
    if (parent !== undefined) parents.set(child, parent);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length && i < 10_000; i += 1) {
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}
