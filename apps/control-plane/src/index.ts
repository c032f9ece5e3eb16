export { loadServerConfig, loadClientConfig, loadSigner, type ServerConfig } from './config.ts';
export { openDatabase, startServer, type RunningServer } from './server.ts';
export { buildProgram, main, readIntegrationFile } from './cli.ts';
