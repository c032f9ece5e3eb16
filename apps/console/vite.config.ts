// Builds the console into dist/, which the control plane serves (AIRLOCK_CONSOLE_DIR). `npm run dev`
// proxies the API to a control plane on AIRLOCK_URL for local work.
import { defineConfig, type Plugin } from 'vite';
import { CONSOLE_PATHS } from './src/routes.ts';

/**
 * Publishes the console's routes as routes.json beside index.html: the control plane answers
 * those paths with the page and every other unknown path with 404.
 */
function publishRoutes(): Plugin {
  return {
    name: 'airlock-console-routes',
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: 'routes.json', source: `${JSON.stringify(CONSOLE_PATHS)}\n` });
    },
  };
}

export default defineConfig({
  esbuild: { jsx: 'automatic' },
  plugins: [publishRoutes()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The control plane's CSP forbids inline scripts; keep every script an external, hashed file.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
    rollupOptions: {
      onwarn(warning, warn) {
        // React Query's "use client" directives mean nothing in a plain client bundle.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  server: {
    proxy: { '/trpc': { target: 'http://127.0.0.1:7443', changeOrigin: false } },
  },
});
