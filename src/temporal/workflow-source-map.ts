import type { WorkerOptions } from '@temporalio/worker';

type WebpackConfigHook = NonNullable<NonNullable<WorkerOptions['bundlerOptions']>['webpackConfigHook']>;

/**
 * Every workflow bundle, prebuilt (scripts/build-bundle.ts) or made at a worker's start, carries a source
 * map without the sources' text. Stack traces still name each file and line; the text would only be sent
 * with the worker's `showStackTraceSources`, which vmhub leaves off. It was nearly half the bundle (2.2
 * MB of 4.1) and was held in each isolate: without it an idle worker is about 25 MiB smaller.
 */
export const withoutSourcesText: WebpackConfigHook = (config) => ({ ...config, devtool: 'inline-nosources-source-map' });
