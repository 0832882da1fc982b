// Host errno → guest status mapping of the host device backend (runs anywhere).
import { describe, expect, it } from 'vitest';
import { ERRNO, classifyAfterResync, errnoOf, mapErrno } from '../../src/backends/host-errno.js';
import { NativeError } from '../../src/native/index.js';
import { ZoneCond, ZoneResult } from '../../src/zoned/types.js';

describe('mapErrno', () => {
  it('resource errors of the block layer become the zone resource statuses', () => {
    for (const op of ['write', 'append', 'mgmt'] as const) {
      expect(mapErrno(ERRNO.ETOOMANYREFS, op)).toBe(ZoneResult.OPEN_RESOURCE);
      expect(mapErrno(ERRNO.EOVERFLOW, op)).toBe(ZoneResult.ACTIVE_RESOURCE);
    }
    // A read or flush cannot run out of zone resources: whatever it is, it is an I/O error.
    expect(mapErrno(ERRNO.ETOOMANYREFS, 'read')).toBe(ZoneResult.IO_ERROR);
    expect(mapErrno(ERRNO.EOVERFLOW, 'flush')).toBe(ZoneResult.IO_ERROR);
  });

  it('EIO, EREMOTEIO and EINVAL of a write or zone operation depend on the zone (null: re-read it)', () => {
    for (const e of [ERRNO.EIO, ERRNO.EREMOTEIO, ERRNO.EINVAL]) {
      expect(mapErrno(e, 'write')).toBeNull();
      expect(mapErrno(e, 'append')).toBeNull();
      expect(mapErrno(e, 'mgmt')).toBeNull();
      expect(mapErrno(e, 'read')).toBe(ZoneResult.IO_ERROR);
    }
  });

  it('the rest', () => {
    expect(mapErrno(ERRNO.EOPNOTSUPP, 'mgmt')).toBe(ZoneResult.UNSUPPORTED);
    expect(mapErrno(ERRNO.EROFS, 'write')).toBe(ZoneResult.READ_ONLY);
    expect(mapErrno(ERRNO.EPERM, 'mgmt')).toBe(ZoneResult.READ_ONLY);
    expect(mapErrno(ERRNO.ENOSPC, 'write')).toBe(ZoneResult.IO_ERROR);
    expect(mapErrno(ERRNO.ENODEV, 'read')).toBe(ZoneResult.IO_ERROR);
    expect(mapErrno(0, 'write')).toBe(ZoneResult.IO_ERROR);
  });
});

describe('classifyAfterResync', () => {
  const W = 1000, END = 1008;
  it('a zone now read-only or offline: INVALID for every operation', () => {
    for (const op of ['write', 'append', 'mgmt'] as const) {
      expect(classifyAfterResync(ERRNO.EIO, op, ZoneCond.READONLY, -1, W, END)).toBe(ZoneResult.INVALID);
      expect(classifyAfterResync(ERRNO.EIO, op, ZoneCond.OFFLINE, -1, W, END)).toBe(ZoneResult.INVALID);
    }
  });
  it('a write that landed partly is a device failure, even when it filled the zone', () => {
    expect(classifyAfterResync(ERRNO.EIO, 'write', ZoneCond.IMP_OPEN, 1004, W, END)).toBe(ZoneResult.IO_ERROR);
    expect(classifyAfterResync(ERRNO.EIO, 'append', ZoneCond.FULL, END, W, END)).toBe(ZoneResult.IO_ERROR);
  });
  it('a zone found full: INVALID', () => {
    expect(classifyAfterResync(ERRNO.EIO, 'write', ZoneCond.FULL, 2000, W, END)).toBe(ZoneResult.INVALID);
  });
  it('a write pointer found elsewhere (changed behind our back): UNALIGNED_WP for a write', () => {
    expect(classifyAfterResync(ERRNO.EIO, 'write', ZoneCond.IMP_OPEN, 992, W, END)).toBe(ZoneResult.UNALIGNED_WP);
    expect(classifyAfterResync(ERRNO.EIO, 'write', ZoneCond.CLOSED, 1500, W, END)).toBe(ZoneResult.UNALIGNED_WP);
  });
  it('nothing changed: the errno decides (EIO → IOERR, the device calling the command invalid → INVALID)', () => {
    expect(classifyAfterResync(ERRNO.EIO, 'write', ZoneCond.IMP_OPEN, W, W, END)).toBe(ZoneResult.IO_ERROR);
    expect(classifyAfterResync(ERRNO.EREMOTEIO, 'write', ZoneCond.IMP_OPEN, W, W, END)).toBe(ZoneResult.INVALID);
    expect(classifyAfterResync(ERRNO.EINVAL, 'mgmt', ZoneCond.EMPTY, W, W, W)).toBe(ZoneResult.INVALID);
    expect(classifyAfterResync(ERRNO.EIO, 'mgmt', ZoneCond.CLOSED, W, W, W)).toBe(ZoneResult.IO_ERROR);
  });
});

describe('errnoOf', () => {
  it('reads Node fs errors (negative errno) and addon errors (positive errno)', () => {
    const fsErr = Object.assign(new Error('x'), { errno: -5, code: 'EIO' });
    expect(errnoOf(fsErr)).toBe(5);
    expect(errnoOf(new NativeError('ioctl', 109, 'fd=3'))).toBe(109);
    expect(errnoOf(new Error('no errno'))).toBe(0);
    expect(errnoOf(null)).toBe(0);
  });
});
