import { afterEach, describe, expect, it } from 'vitest';
import { GuestMemoryImage } from '../harness/guest-memory-image.js';
import { startRig, type TestRig } from '../harness/setup.js';

describe('smoke', () => {
  let rig: TestRig;
  let mem: GuestMemoryImage;
  afterEach(async () => { await rig.cleanup(); mem?.close(); });

  it('echoes one request', async () => {
    rig = startRig();
    const fe = rig.connect();
    await fe.negotiate();
    mem = GuestMemoryImage.simple();
    await fe.setMemTable(mem);
    const q = await fe.setupQueue(mem, 0, { size: 16 });
    const src = mem.alloc(100);
    mem.write(src, new Uint8Array(100).fill(7));
    const dst = mem.alloc(100);
    q.add([{ gpa: src, len: 100 }, { gpa: dst, len: 100, write: true }]);
    q.kick();
    const used = await q.waitUsed(1);
    expect(used[0].len).toBe(100);
    expect(mem.read(dst, 100)).toEqual(new Uint8Array(100).fill(7));
    console.log(rig.errors());
  });
});
