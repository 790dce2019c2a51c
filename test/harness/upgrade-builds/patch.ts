/** The patch that build B of the upgrade test puts its change behind, and the memo its new runs carry. */
export const BUILD_B_PATCH = 'upgrade-test-build-b';
export const BUILD_MEMO = 'vmhubBuild';
