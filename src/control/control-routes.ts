// The control API's endpoints: status, zones (report and live zone actions incl. faults),
// error/latency rules, power cut. Registered on an ApiRouter by serve; every action that
// changes something is logged once with its parameters.
import type { Logger } from 'pino';
import type { Backend } from '../backends/backend.js';
import type { BlkDevice } from '../blk/blk-device.js';
import { BLK_F, bit } from '../blk/constants.js';
import { zoneJson, type ZoneJson } from '../cli/report-format.js';
import type { VhostUserServer } from '../vhost-user/server.js';
import { ZONE_COND_LONG_NAMES, ZONE_RESULT_NAMES, ZoneOp, ZoneResult } from '../zoned/types.js';
import { ApiError, type ApiRouter } from './api-server.js';
import type { FaultRules } from './fault-rules.js';
import type { PowerControl } from './power-cut.js';
import { POWER_CUT_POLICIES, type PowerCutPolicy, type VolatileCacheBackend } from './volatile-cache.js';

export interface ControlContext {
  device: BlkDevice;
  /** What the device runs on (the volatile-cache wrapper when there is one). */
  backend: Backend;
  server: VhostUserServer;
  faults: FaultRules;
  power: PowerControl;
  cache: VolatileCacheBackend | null;
  /** What is served: image path, device path or "memory". */
  source: { image?: string; device?: string; memory?: boolean };
  queueSize: number;
  startedAt: number;
  logger: Logger;
}

/** Zone actions of POST /zones/{zone}/{action}. */
export const ZONE_ACTIONS: Readonly<Record<string, ZoneOp>> = {
  open: ZoneOp.OPEN, close: ZoneOp.CLOSE, finish: ZoneOp.FINISH, reset: ZoneOp.RESET,
  offline: ZoneOp.SET_OFFLINE, readonly: ZoneOp.SET_READONLY, clear: ZoneOp.CLEAR_FAULT,
};

/** Most zones in one GET /zones answer; page with ?zone=&count= beyond it. */
export const MAX_ZONES_PER_REPLY = 65536;

const REFUSED: Record<number, string> = {
  [ZoneResult.INVALID]: 'the zone condition does not allow it',
  [ZoneResult.OPEN_RESOURCE]: 'too many open zones',
  [ZoneResult.ACTIVE_RESOURCE]: 'too many active zones',
  [ZoneResult.READ_ONLY]: 'the disk is served read-only',
  [ZoneResult.IO_ERROR]: 'I/O error',
  [ZoneResult.UNSUPPORTED]: 'not supported by this backend',
};

function intParam(name: string, v: string | null, dflt?: number): number {
  if (v === null || v === '') {
    if (dflt !== undefined) return dflt;
    throw new ApiError('bad-field', `${name} is required`, { field: name });
  }
  if (!/^\d{1,15}$/.test(v)) throw new ApiError('bad-field', `${name} ${JSON.stringify(v)} is not a non-negative integer`, { field: name, value: v });
  return Number(v);
}

export function registerControlRoutes(router: ApiRouter, c: ControlContext): void {
  const log = c.logger;
  const zoned = (): NonNullable<Backend['info']['zoned']> => {
    const z = c.device.zoned ? c.backend.info.zoned : null;
    if (!z) throw new ApiError('not-zoned', 'this disk is served as a regular disk (--model none): it has no zones', null);
    return z;
  };
  const zoneIndex = (v: string): number => {
    const z = zoned();
    const n = intParam('zone', v);
    if (n >= z.nrZones) throw new ApiError('zone-out-of-range', `zone ${v} is not a zone of this disk (0..${z.nrZones - 1})`, { field: 'zone', value: v });
    return n;
  };

  router.add('GET', '/status', () => ({ json: status(c) }), { readOnly: true });

  router.add('GET', '/zones', async (req) => {
    const z = zoned();
    const first = intParam('zone', req.query.get('zone'), 0);
    if (first >= z.nrZones) throw new ApiError('zone-out-of-range', `zone ${first} is not a zone of this disk (0..${z.nrZones - 1})`, { field: 'zone', value: first });
    const left = z.nrZones - first;
    const count = intParam('count', req.query.get('count'), Math.min(left, MAX_ZONES_PER_REPLY));
    if (count > MAX_ZONES_PER_REPLY) throw new ApiError('bad-field', `count ${count} is over ${MAX_ZONES_PER_REPLY} zones per request: page with zone= and count=`, { field: 'count', value: count });
    const zones: ZoneJson[] = [];
    let i = first;
    await c.backend.reportZones(first * z.zoneSectors, count, (start, len, cap, wp, type, cond) => {
      zones.push(zoneJson(i++, start, len, cap, wp, type, cond));
      return true;
    });
    const next = first + zones.length < z.nrZones ? first + zones.length : null;
    return { json: { nrZones: z.nrZones, zoneSectors: z.zoneSectors, zones, next } };
  }, { readOnly: true });

  router.add('POST', '/zones/{zone}/{action}', async (req) => {
    const n = zoneIndex(req.params.zone);
    const action = req.params.action;
    const op = ZONE_ACTIONS[action];
    if (op === undefined) throw new ApiError('unknown-action', `zone action ${JSON.stringify(action)} is not one of ${Object.keys(ZONE_ACTIONS).join(', ')}`, { field: 'action', value: action });
    const z = zoned();
    log.info({ zone: n, action }, 'control: zone action');
    const r = await c.backend.zoneMgmt(op, n * z.zoneSectors);
    const cond = await zoneCond(c.backend, n, z.zoneSectors);
    if (r === ZoneResult.UNSUPPORTED && c.source.device) {
      throw new ApiError('unsupported', `zone ${action} is not available on a host device backend in this version`, { action });
    }
    if (r !== ZoneResult.OK) {
      throw new ApiError('zone-refused', `zone ${n}: ${action} refused: ${REFUSED[r] ?? ZONE_RESULT_NAMES[r]} (condition ${ZONE_COND_LONG_NAMES[cond] ?? cond})`, { zone: n, action, result: ZONE_RESULT_NAMES[r] });
    }
    return { json: { zone: n, action, cond, condName: ZONE_COND_LONG_NAMES[cond] ?? 'unknown' } };
  });

  router.add('GET', '/faults', () => ({ json: { faults: c.faults.list() } }), { readOnly: true });

  router.add('POST', '/faults', (req) => {
    const rule = c.faults.add(req.body);
    log.info({ rule }, 'control: fault rule added');
    return { status: 201, json: { fault: rule } };
  });

  router.add('DELETE', '/faults', () => {
    const removed = c.faults.clear();
    log.info({ removed }, 'control: all fault rules removed');
    return { json: { removed } };
  });

  router.add('DELETE', '/faults/{id}', (req) => {
    const id = intParam('id', req.params.id);
    if (!c.faults.remove(id)) throw new ApiError('no-such-fault', `no fault rule ${id}`, { field: 'id', value: id });
    log.info({ id }, 'control: fault rule removed');
    return { json: { removed: 1 } };
  });

  router.add('POST', '/power-cut', async (req) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    if (typeof b !== 'object' || Array.isArray(b)) throw new ApiError('bad-field', 'the body must be a JSON object {"policy", "seed"}', b);
    for (const k of Object.keys(b)) if (k !== 'policy' && k !== 'seed') throw new ApiError('bad-field', `${k}: unknown field (known: policy, seed)`, { field: k });
    const policy = (b.policy ?? 'all') as PowerCutPolicy;
    if (!POWER_CUT_POLICIES.includes(policy)) throw new ApiError('bad-field', `policy ${JSON.stringify(b.policy)} must be one of ${POWER_CUT_POLICIES.join(', ')}`, { field: 'policy', value: b.policy });
    const seed = b.seed;
    if (seed !== undefined && (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0 || seed > 2 ** 32 - 1)) {
      throw new ApiError('bad-field', `seed ${JSON.stringify(seed)} must be an integer from 0 to ${2 ** 32 - 1}`, { field: 'seed', value: seed });
    }
    log.info({ policy, seed }, 'control: power cut');
    return { json: await c.power.cut(policy, seed as number | undefined) };
  });
}

async function zoneCond(b: Backend, zone: number, zoneSectors: number): Promise<number> {
  let cond = -1;
  await b.reportZones(zone * zoneSectors, 1, (_s, _l, _c, _w, _t, cd) => { cond = cd; return false; });
  return cond;
}

function status(c: ControlContext): Record<string, unknown> {
  const i = c.backend.info;
  const conn = c.server.connection;
  const features = c.device.negotiatedFeatures;
  return {
    model: c.device.zoned ? 'host-managed' : 'none',
    source: c.source.device ? { device: c.source.device } : c.source.image ? { image: c.source.image } : { memory: true },
    capacitySectors: i.capacitySectors, capacityBytes: i.capacitySectors * 512,
    blockSize: i.blockSize, physicalBlockSize: i.physicalBlockSize, readOnly: i.readOnly, serial: i.serial,
    zoned: c.device.zoned ? i.zoned : null,
    frontend: {
      connected: conn !== null,
      features: conn ? '0x' + features.toString(16) : null,
      zonedNegotiated: conn ? (features & bit(BLK_F.ZONED)) !== 0n : null,
      writeback: conn ? c.device.writebackEnabled : null,
    },
    queues: c.device.numQueues, queueSize: c.queueSize,
    requestsInFlight: c.device.requestsInFlight,
    delayedRequests: c.faults.delayedRequests,
    uptimeSeconds: Math.round((Date.now() - c.startedAt) / 100) / 10,
    faults: { rules: c.faults.list().length, live: c.faults.liveRules },
    volatileCache: c.cache ? { enabled: true, unflushedWrites: c.cache.unflushedWrites, unflushedBytes: c.cache.unflushedBytes } : { enabled: false },
    powerCut: { inProgress: c.power.inProgress, last: c.power.last },
    pid: process.pid,
  };
}
