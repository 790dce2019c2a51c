import net from 'node:net';

/**
 * Whether an IP address is a public unicast address an image may be fetched from without an
 * allow-list. Everything else is named: loopback, private, link-local, multicast, and the other
 * special-purpose ranges of the IANA registries. IPv6 forms that carry an IPv4 address
 * (IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`) are judged by that IPv4 address.
 */
type Range = [network: number[], bits: number, name: string];

const V4: Range[] = [
  [[0, 0, 0, 0], 8, 'unspecified ("this network")'],
  [[10, 0, 0, 0], 8, 'private'],
  [[100, 64, 0, 0], 10, 'shared (CGNAT)'],
  [[127, 0, 0, 0], 8, 'loopback'],
  [[169, 254, 0, 0], 16, 'link-local'],
  [[172, 16, 0, 0], 12, 'private'],
  [[192, 0, 0, 0], 24, 'IETF protocol'],
  [[192, 0, 2, 0], 24, 'documentation'],
  [[192, 88, 99, 0], 24, '6to4 relay'],
  [[192, 168, 0, 0], 16, 'private'],
  [[198, 18, 0, 0], 15, 'benchmarking'],
  [[198, 51, 100, 0], 24, 'documentation'],
  [[203, 0, 113, 0], 24, 'documentation'],
  [[224, 0, 0, 0], 4, 'multicast'],
  [[240, 0, 0, 0], 4, 'reserved'],
];

/** IPv6 as 16 bytes; only 2000::/3 is global unicast, minus these. */
const V6: Range[] = [
  [[0x20, 0x01, 0x0d, 0xb8], 32, 'documentation'],
  [[0x20, 0x01, 0, 0], 23, 'IETF protocol'],
  [[0x20, 0x02], 16, '6to4'],
  [[0x3f, 0xff], 20, 'documentation'],
];

function inRange(bytes: number[], [network, bits]: Range): boolean {
  for (let i = 0; i * 8 < bits; i++) {
    const mask = bits - i * 8 >= 8 ? 0xff : (0xff << (8 - (bits - i * 8))) & 0xff;
    if ((bytes[i] & mask) !== ((network[i] ?? 0) & mask)) return false;
  }
  return true;
}

function v4Reason(bytes: number[]): string | undefined {
  return V4.find((r) => inRange(bytes, r))?.[2];
}

/** The 16 bytes of an IPv6 address in any textual form (zone ID and embedded dotted IPv4 included). */
function v6Bytes(address: string): number[] {
  let text = address.replace(/%.*$/, '');
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    tail.push(...dotted[1].split('.').map(Number));
    text = text.slice(0, -dotted[1].length) + '0:0';
  }
  const [head, rest] = text.split('::');
  const groups = (s: string | undefined) => (s ? s.split(':').filter((g) => g !== '') : []);
  const left = groups(head);
  const right = groups(rest);
  const all = rest === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const bytes = all.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
  if (dotted) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** Why the address is not public (e.g. "loopback"), or undefined for a public unicast address. */
export function nonPublicReason(address: string): string | undefined {
  if (net.isIPv4(address)) return v4Reason(address.split('.').map(Number));
  if (!net.isIPv6(address)) return 'not an IP address';
  const b = v6Bytes(address);
  const zeros = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4Reason(b.slice(12));
  if (inRange(b, [[0, 0x64, 0xff, 0x9b], 96, ''])) return v4Reason(b.slice(12));
  if (zeros(0, 16)) return 'unspecified';
  if (zeros(0, 15) && b[15] === 1) return 'loopback';
  if (inRange(b, [[0xfc], 7, ''])) return 'unique-local (private)';
  if (inRange(b, [[0xfe, 0x80], 10, ''])) return 'link-local';
  if (inRange(b, [[0xff], 8, ''])) return 'multicast';
  if (!inRange(b, [[0x20], 3, ''])) return 'reserved';
  return V6.find((r) => inRange(b, r))?.[2];
}
