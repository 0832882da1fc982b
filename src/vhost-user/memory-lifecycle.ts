// The life of the front-end's memory table (spec §5.3): regions are mapped when a table or a
// region arrives, the rings re-resolve their addresses after every change, and a region that
// left the table is unmapped only once no request popped before the change can still be
// reading or writing it. Teardown unmaps everything.
import type { Logger } from 'pino';
import { ZbdError } from '../errors.js';
import { MappedRegion, MemoryTable, type MemoryTableOptions } from './memory-table.js';
import type { MemRegionDesc } from './messages.js';

/** What uses guest memory: a queue that re-resolves its ring and may hold requests in flight. */
export interface MemoryUser {
  remap(): void;
  readonly inFlight: number;
  whenIdle(): Promise<void>;
}

export class MemoryLifecycle {
  readonly table: MemoryTable;
  private readonly log: Logger;
  private users: readonly MemoryUser[] = [];
  /** Regions replaced or removed while requests may still hold views into them. */
  private readonly retired = new Set<MappedRegion>();

  constructor(log: Logger, opts?: MemoryTableOptions) {
    this.log = log;
    this.table = new MemoryTable(opts);
  }

  /** The queues told about changes (set once they exist). */
  setUsers(users: readonly MemoryUser[]): void { this.users = users; }

  /** SET_MEM_TABLE: maps every region (fds stay the caller's) and replaces the table. */
  setTable(descs: readonly MemRegionDesc[], fds: readonly number[]): void {
    this.table.checkDisjoint(descs);
    const mapped: MappedRegion[] = [];
    try {
      for (let i = 0; i < descs.length; i++) mapped.push(this.table.mapRegion(descs[i], fds[i]));
    } catch (err) {
      for (const r of mapped) r.unmap();
      throw err;
    }
    const old = this.table.replaceAll(mapped);
    this.log.debug({ regions: mapped.map(String) }, 'memory table set');
    this.changed(old);
  }

  /** ADD_MEM_REG. */
  add(desc: MemRegionDesc, fd: number): void {
    const r = this.table.mapRegion(desc, fd);
    try {
      this.table.add(r);
    } catch (err) {
      r.unmap();
      throw err;
    }
    this.log.debug({ region: String(r) }, 'memory region added');
    this.changed([]);
  }

  /** REM_MEM_REG: the region with the same guest address, size and user address. */
  remove(desc: MemRegionDesc): void {
    const r = this.table.remove(desc);
    if (!r) {
      throw new ZbdError('EPROTO', `no region with gpa 0x${desc.guestPhysAddr.toString(16)} size ` +
        `0x${desc.size.toString(16)} uva 0x${desc.userAddr.toString(16)}`, desc.guestPhysAddr);
    }
    this.log.debug({ region: String(r) }, 'memory region removed');
    this.changed([r]);
  }

  private changed(old: MappedRegion[]): void {
    for (const u of this.users) u.remap();
    if (old.length === 0) return;
    const busy = this.users.filter((u) => u.inFlight > 0);
    if (busy.length === 0) {
      for (const r of old) r.unmap();
      return;
    }
    for (const r of old) this.retired.add(r);
    Promise.all(busy.map((u) => u.whenIdle())).then(() => {
      for (const r of old) {
        if (this.retired.delete(r)) r.unmap();
      }
    }).catch((err: unknown) => this.log.error({ err }, 'unmapping replaced memory failed'));
  }

  /** Teardown (every ring stopped and detached): unmaps all regions, current and retired. */
  release(onError: (err: unknown) => void): void {
    for (const r of [...this.table.clear(), ...this.retired]) {
      try { r.unmap(); } catch (err) { onError(err); }
    }
    this.retired.clear();
  }
}
