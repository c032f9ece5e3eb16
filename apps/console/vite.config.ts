// Builds the console into dist/, which the control plane serves (AIRLOCK_CONSOLE_DIR). `npm run dev`
// proxies the API to a control plane on AIRLOCK_URL for local work.
import { defineConfig } from 'vite';

export default defineConfig({
  esbuild: { jsx: 'automatic' },
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
