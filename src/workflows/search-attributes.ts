import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** The custom search attributes of SPEC §4 (contract). */
export const IMAGE_KEY = defineSearchAttributeKey('VmImage', SearchAttributeType.KEYWORD);
export const VERSION_KEY = defineSearchAttributeKey('VmImageVersion', SearchAttributeType.KEYWORD);
export const SDDC_KEY = defineSearchAttributeKey('VmSddc', SearchAttributeType.KEYWORD_LIST);
