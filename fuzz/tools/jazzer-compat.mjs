// Makes the prebuilt libFuzzer addon of @jazzer.js/fuzzer load on glibc < 2.38 / libstdc++ < GCC 13
// (Debian 12 has glibc 2.36 and GLIBCXX_3.4.30). The prebuild asks for exactly three symbols that
// those do not have:
//   __isoc23_strtol@GLIBC_2.38, __isoc23_strtoul@GLIBC_2.38  (C23 strtol/strtoul: they only add
//       the "0b" prefix, which libFuzzer's flag parsing never sees): redirected to strtol/strtoul
//       @GLIBC_2.2.5 (the names are the tails of the __isoc23_ strings already in .dynstr);
//   _ZSt21ios_base_library_initv@GLIBCXX_3.4.32  (GCC 13 <iostream> references it only to pull in
//       the library; it has no relocation, so nothing ever binds it).
// The two version needs (GLIBC_2.38, GLIBCXX_3.4.32) are then marked VER_FLG_WEAK, which makes the
// dynamic loader accept their absence. Nothing else in the file changes. The original is kept as
// *.orig; the patch runs only where the addon fails to load for exactly this reason, and is
// idempotent. Usage: node fuzz/tools/jazzer-compat.mjs [--check]
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const VER_FLG_WEAK = 0x2;

export function addonPath() {
  const pkg = dirname(require.resolve('@jazzer.js/fuzzer/package.json'));
  return join(pkg, 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
}

/** Loads the addon in a child process; returns '' or the error message. */
export function loadError(file = addonPath()) {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { encoding: 'utf8' });
  if (r.status === 0) return '';
  const m = /Error: (.*)/.exec(r.stderr);
  return m ? m[1] : r.stderr.trim() || `exit ${r.status}`;
}

function patchElf(buf) {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error('not a little-endian ELF64 file');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a), shnum = buf.readUInt16LE(0x3c);
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push({
      type: buf.readUInt32LE(o + 4), offset: Number(buf.readBigUInt64LE(o + 0x18)), size: Number(buf.readBigUInt64LE(o + 0x20)),
      link: buf.readUInt32LE(o + 0x28), info: buf.readUInt32LE(o + 0x2c), entsize: Number(buf.readBigUInt64LE(o + 0x38)),
    });
  }
  const SHT_DYNSYM = 11, SHT_GNU_versym = 0x6fffffff, SHT_GNU_verneed = 0x6ffffffe;
  const dynsym = sections.find((s) => s.type === SHT_DYNSYM);
  const versym = sections.find((s) => s.type === SHT_GNU_versym);
  const verneed = sections.find((s) => s.type === SHT_GNU_verneed);
  if (!dynsym || !versym || !verneed) throw new Error('no .dynsym / .gnu.version / .gnu.version_r');
  const dynstr = sections[dynsym.link];
  const str = (off) => {
    const at = dynstr.offset + off;
    return buf.toString('latin1', at, buf.indexOf(0, at));
  };
  // version needs: name -> { index, flagsAt }
  const needs = new Map();
  for (let o = verneed.offset, n = 0; n < verneed.info; n++) {
    const file = str(buf.readUInt32LE(o + 4));
    const cnt = buf.readUInt16LE(o + 2);
    let a = o + buf.readUInt32LE(o + 8);
    for (let k = 0; k < cnt; k++) {
      needs.set(`${file}:${str(buf.readUInt32LE(a + 8))}`, { index: buf.readUInt16LE(a + 6), flagsAt: a + 4 });
      a += buf.readUInt32LE(a + 12);
    }
    o += buf.readUInt32LE(o + 12);
  }
  const base = needs.get('libc.so.6:GLIBC_2.2.5');
  if (!base) throw new Error('no libc GLIBC_2.2.5 version need');
  let changed = 0;
  const count = dynsym.size / dynsym.entsize;
  for (let i = 0; i < count; i++) {
    const o = dynsym.offset + i * dynsym.entsize;
    const name = str(buf.readUInt32LE(o));
    if (name === '__isoc23_strtol' || name === '__isoc23_strtoul') {
      buf.writeUInt32LE(buf.readUInt32LE(o) + '__isoc23_'.length, o); // -> "strtol" / "strtoul"
      buf.writeUInt16LE(base.index, versym.offset + i * 2);
      changed++;
    }
  }
  for (const key of ['libc.so.6:GLIBC_2.38', 'libstdc++.so.6:GLIBCXX_3.4.32']) {
    const v = needs.get(key);
    if (v && !(buf.readUInt16LE(v.flagsAt) & VER_FLG_WEAK)) {
      buf.writeUInt16LE(buf.readUInt16LE(v.flagsAt) | VER_FLG_WEAK, v.flagsAt);
      changed++;
    }
  }
  return changed;
}

/** Ensures the addon loads; patches it when the only obstacle is the glibc/libstdc++ version. */
export function ensureJazzerLoads({ quiet = false } = {}) {
  const file = addonPath();
  const err = loadError(file);
  if (!err) return;
  if (!/version `(GLIBC_2\.3[89]|GLIBC_2\.4\d|GLIBCXX_3\.4\.3[2-9])' not found/.test(err)) {
    throw new Error(`the Jazzer.js fuzzer addon does not load: ${err}`);
  }
  if (!existsSync(`${file}.orig`)) copyFileSync(file, `${file}.orig`);
  const buf = readFileSync(`${file}.orig`);
  const changed = patchElf(buf);
  writeFileSync(file, buf);
  const after = loadError(file);
  if (after) throw new Error(`the Jazzer.js fuzzer addon still does not load after the glibc patch (${changed} changes): ${after}`);
  if (!quiet) console.error(`jazzer-compat: patched ${file} for this glibc/libstdc++ (${changed} changes; original kept as .orig)`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes('--check')) {
    const err = loadError();
    console.log(err ? `does not load: ${err}` : 'loads');
    process.exit(err ? 1 : 0);
  }
  ensureJazzerLoads();
}
