// The RDMA devices every soft-RoCE test relies on, as ci/guest/lib.sh creates them inside the VM:
// rxe0 (soft-RoCE) on dummy netdev d0 and siw0 (soft-iWARP) on dummy netdev d1, both ACTIVE.
// Runs only inside the VM (`npm run test:softroce`); on a host it fails on purpose, because a
// host without RDMA silently skipping these tests would hide that nothing was tested.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const inVm = process.env['SMBDIRECT_SOFTROCE'] === '1';
const RXE = process.env['SMBDIRECT_RXE_DEV'] ?? 'rxe0';
const SIW = process.env['SMBDIRECT_SIW_DEV'] ?? 'siw0';

interface RdmaLink {
  ifname: string;
  port: number;
  state: string;
  physical_state: string;
  netdev?: string;
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
}

/** `key:  value` from ibv_devinfo's indented output (first occurrence). */
function field(text: string, key: string): string | undefined {
  return new RegExp(`^\\s*${key}:\\s*(.+?)\\s*$`, 'm').exec(text)?.[1];
}

if (!inVm) {
  it('soft-RoCE tests run only inside the VM', () => {
    assert.fail(
      'test/softroce/*.test.ts run only inside the soft-RoCE/soft-iWARP VM: use `npm run test:softroce` ' +
        '(ci/softroce.sh), which boots it and sets SMBDIRECT_SOFTROCE=1. This host has no rxe0/siw0.',
    );
  });
} else {
  describe('soft-RoCE / soft-iWARP devices in the VM', () => {
    it(`/sys/class/infiniband lists ${RXE} and ${SIW}`, () => {
      const devs = readdirSync('/sys/class/infiniband');
      assert.ok(devs.includes(RXE), `${RXE} missing: ${devs.join(', ') || '(none)'}`);
      assert.ok(devs.includes(SIW), `${SIW} missing: ${devs.join(', ') || '(none)'}`);
    });

    it('`rdma link show` has rxe0 on d0 and siw0 on d1, both ACTIVE', () => {
      const links = JSON.parse(run('rdma', ['-j', 'link', 'show'])) as RdmaLink[];
      for (const [dev, netdev] of [[RXE, 'd0'], [SIW, 'd1']] as const) {
        const link = links.find((l) => l.ifname === dev);
        assert.ok(link, `rdma link show has no ${dev}: ${JSON.stringify(links)}`);
        assert.equal(link.netdev, netdev, `${dev} netdev`);
        assert.equal(link.state, 'ACTIVE', `${dev} state`);
        assert.equal(link.physical_state, 'LINK_UP', `${dev} physical_state`);
      }
      // and the human-readable form says the same
      const text = run('rdma', ['link', 'show']);
      assert.match(text, new RegExp(`link ${RXE}/1 state ACTIVE .*netdev d0`));
      assert.match(text, new RegExp(`link ${SIW}/1 state ACTIVE .*netdev d1`));
    });

    it(`ibv_devinfo: ${RXE} is InfiniBand transport over an Ethernet link layer (RoCE)`, () => {
      const info = run('ibv_devinfo', ['-d', RXE]);
      assert.match(field(info, 'transport') ?? '', /^InfiniBand\b/);
      assert.equal(field(info, 'link_layer'), 'Ethernet');
      assert.match(field(info, 'state') ?? '', /^PORT_ACTIVE\b/);
    });

    it(`ibv_devinfo: ${SIW} is iWARP transport`, () => {
      const info = run('ibv_devinfo', ['-d', SIW]);
      assert.match(field(info, 'transport') ?? '', /^iWARP\b/);
      assert.match(field(info, 'state') ?? '', /^PORT_ACTIVE\b/);
    });

    it('SMBDIRECT_RXE_GID_INDEX is the RoCE v2 GID of SMBDIRECT_RXE_IP', () => {
      const index = process.env['SMBDIRECT_RXE_GID_INDEX'];
      const ip = process.env['SMBDIRECT_RXE_IP'] ?? '10.99.0.1';
      assert.match(index ?? '', /^\d+$/, 'SMBDIRECT_RXE_GID_INDEX not set by the harness');
      const port = `/sys/class/infiniband/${RXE}/ports/1`;
      const gid = readFileSync(`${port}/gids/${index}`, 'utf8').trim();
      const type = readFileSync(`${port}/gid_attrs/types/${index}`, 'utf8').trim();
      const hex = ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');
      assert.equal(gid, `0000:0000:0000:0000:0000:ffff:${hex.slice(0, 4)}:${hex.slice(4)}`);
      assert.equal(type, 'RoCE v2');
    });
  });
}
