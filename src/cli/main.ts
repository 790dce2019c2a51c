/** The vmhub admin CLI: every command is a module in src/cli/, put together by src/cli/program.ts. */
import { main } from './program';

export { main };

if (require.main === module) void main(process.argv);
