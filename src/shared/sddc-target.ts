import { contentLibrary, type LibraryOptions } from './target-kinds/content-library';
import type { ContentLibraryTarget } from './target-kinds/kind';
import { directory } from './target-kinds/directory';
import { failer, type PlacementFields, type TargetKind } from './target-kinds/kind';

/**
 * Where an SDDC keeps a deployed image: each kind is one record in ./kinds, listed here. Plain data and
 * plain functions: the workflow bundle imports them.
 */
const KINDS = [contentLibrary, directory] as const;

/** An SDDC without a target (the topology's or the CLI's) keeps images in a directory. */
const DEFAULT_KIND = directory;

type Kind = (typeof KINDS)[number];
type TargetOf<K> = K extends TargetKind<infer T, infer _P, infer _O> ? T : never;
type PlacementOf<K> = K extends TargetKind<infer _T, infer P, infer _O> ? P : never;

export type SddcTarget = TargetOf<Kind>;
/** Where a deployed copy lives. */
export type Placement = PlacementOf<Kind>;
/** `vmhub sddc add`'s and `update`'s target options: every kind's. */
export type TargetOptions = LibraryOptions;

type AnyKind = TargetKind<{ kind: string }, { kind: string }, TargetOptions>;

/** The record of a target's or a placement's kind (given only values of its kind); unknown kinds get the default's. */
function recordOf(value: { kind: string }): AnyKind {
  return (KINDS.find((k) => k.kind === value.kind) ?? DEFAULT_KIND) as unknown as AnyKind;
}

/** A target, or the default kind's for an SDDC registered without one, with its kind's record. */
function withKind(target: SddcTarget | undefined): { kind: AnyKind; t: SddcTarget } {
  const t = target ?? parseTarget(undefined);
  return { kind: recordOf(t), t };
}

/** Checks a target from the topology, the CLI or a task; what it returns has exactly the known fields. */
export function parseTarget(raw: unknown, what = 'target'): SddcTarget {
  const fail = failer(what);
  if (raw === undefined) return DEFAULT_KIND.parse({}, fail);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('must be an object with a kind');
  const t = raw as Record<string, unknown>;
  const kind = KINDS.find((k) => k.kind === t.kind);
  if (!kind) return fail(`kind must be ${KINDS.map((k) => JSON.stringify(k.kind)).join(' or ')}, not ${JSON.stringify(t.kind)}`);
  return kind.parse(t, fail);
}

/** Every kind's own `vmhub sddc add`/`update` options. */
export const TARGET_OPTIONS = KINDS.flatMap((k) => k.options);

/** The target the CLI options describe; without any, the default kind's. */
export function targetFromOptions(sddc: string, options: TargetOptions): SddcTarget {
  for (const kind of KINDS) {
    const target = kind.fromOptions?.(sddc, options);
    if (target) return target;
  }
  return parseTarget(undefined);
}

/** The content library a deploy imports into and a retire removes the item from; undefined for a kind without one. */
export function libraryOf(target: SddcTarget | undefined): ContentLibraryTarget | undefined {
  const { kind, t } = withKind(target);
  return kind.library(t);
}

/** `vmhub sddc list`'s TARGET column. */
export function targetLabel(target: SddcTarget | undefined): string {
  const { kind, t } = withKind(target);
  return kind.label(t);
}

/** Where an SDDC deploys into, for `vmhub sddc show/add/update`. */
export function describeTarget(target: SddcTarget | undefined): string {
  const { kind, t } = withKind(target);
  return kind.describe(t);
}

/** What `vmhub sddc add` says after where the SDDC deploys into. */
export function targetAddNote(target: SddcTarget | undefined): string {
  const { kind, t } = withKind(target);
  return kind.addNote(t);
}

/** Where a row's copy is: the first kind that finds its place in the row. */
function rowPlacement(row: PlacementFields): Placement | undefined {
  for (const kind of KINDS) {
    const placement = kind.placement(row);
    if (placement) return placement;
  }
  return undefined;
}

/** One line saying where a row's copy is, for people; undefined when the row names no place. */
export function describePlacement(row: PlacementFields): string | undefined {
  const placement = rowPlacement(row);
  return placement && recordOf(placement).describePlacement(placement);
}
