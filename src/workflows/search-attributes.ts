import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** vmhub's custom search attributes: operators' queries and the Web UI depend on these names. */
export const IMAGE_KEY = defineSearchAttributeKey('VmImage', SearchAttributeType.KEYWORD);
export const VERSION_KEY = defineSearchAttributeKey('VmImageVersion', SearchAttributeType.KEYWORD);
export const SDDC_KEY = defineSearchAttributeKey('VmSddc', SearchAttributeType.KEYWORD_LIST);
