// What the host says about a file and the filesystem holding it: the filesystem's name,
// free space, the largest file it (or the process's ulimit) allows, and who holds a lock.
// Used to turn host errors into sentences a user can act on.
import fs from 'node:fs';

/** statfs f_type magic numbers (linux/magic.h) of filesystems an image may live on. */
const FS_NAMES: ReadonlyMap<number, string> = new Map([
  [0xef53, 'ext4'], // ext2/ext3 share the magic; ext4 is what current systems mount
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x01021994, 'tmpfs'],
  [0x858458f6, 'ramfs'],
  [0xf2f52010, 'f2fs'],
  [0x2fc12fc1, 'zfs'],
  [0xca451a4e, 'bcachefs'],
  [0x794c7630, 'overlayfs'],
  [0x6969, 'nfs'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb2'],
  [0x65735546, 'fuse'],
  [0x4d44, 'vfat'],
  [0x2011bab0, 'exfat'],
  [0x7366746e, 'ntfs3'],
  [0x73717368, 'squashfs'],
  [0xe0f5e1e2, 'erofs'],
  [0x9660, 'iso9660'],
]);

export interface FilesystemFacts {
  /** e.g. 'ext4', or 'filesystem 0x1234' when the magic is not one we name. */
  name: string;
  /** Bytes an unprivileged writer may still allocate. */
  freeBytes: number;
  blockSize: number;
}

/** The filesystem holding `file` (or, for a file not created yet, its directory); null if it cannot be asked. */
export function filesystemOf(file: string): FilesystemFacts | null {
  try {
    const s = fs.statfsSync(file);
    return { name: FS_NAMES.get(s.type) ?? `filesystem 0x${s.type.toString(16)}`, freeBytes: s.bavail * s.bsize, blockSize: s.bsize };
  } catch {
    return null;
  }
}

/** The process's file-size limit (ulimit -f, RLIMIT_FSIZE) in bytes, or Infinity. */
export function processFileSizeLimit(): number {
  try {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max file size'));
    const soft = line?.slice('Max file size'.length).trim().split(/\s+/)[0];
    return soft && /^\d+$/.test(soft) ? Number(soft) : Infinity;
  } catch {
    return Infinity;
  }
}

/**
 * The largest size `fd` (a regular file of ours, its content expendable beyond `keep`
 * bytes) can be truncated to, found by bisection with ftruncate: exact for any filesystem
 * (ext4's limit depends on its block size and features), costing ~50 calls on a sparse file.
 * The file is left at `keep` bytes.
 */
export function probeMaxFileSize(fd: number, keep: number): number {
  const fits = (n: number): boolean => {
    try { fs.ftruncateSync(fd, n); return true; } catch { return false; }
  };
  let lo = keep, hi = Number.MAX_SAFE_INTEGER;
  if (fits(hi)) lo = hi;
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (fits(mid)) lo = mid; else hi = mid;
  }
  fs.ftruncateSync(fd, keep);
  return lo;
}

/**
 * Which process holds a flock on the file open as `fd`, from /proc/locks ("pid 1234:
 * node dist/cli/main.js serve ..."), or null when it cannot be told (other pid namespace).
 */
export function lockHolder(fd: number): string | null {
  try {
    const st = fs.fstatSync(fd);
    // /proc/locks names the file as MAJOR:MINOR:INODE with the device numbers in hex.
    const major = Number((BigInt(st.dev) >> 8n) & 0xfffn | ((BigInt(st.dev) >> 32n) & ~0xfffn));
    const minor = Number((BigInt(st.dev) & 0xffn) | ((BigInt(st.dev) >> 12n) & ~0xffn));
    const want = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
    for (const line of fs.readFileSync('/proc/locks', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (blocked waiters carry "->" first)
      if (f[1] === '->' || f[1] !== 'FLOCK' || f[5] !== want) continue;
      const pid = f[4];
      if (Number(pid) === process.pid) continue;
      let cmd = '';
      try { cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '); } catch { /* gone or hidden */ }
      if (cmd.length > 100) cmd = cmd.slice(0, 97) + '...';
      return `pid ${pid}${cmd ? `: ${cmd}` : ''}`;
    }
  } catch { /* no /proc: say nothing */ }
  return null;
}
