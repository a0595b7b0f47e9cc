import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

// The build goes into the Python package, so `dovecote serve` serves it without Node.js.
const outDir = fileURLToPath(new URL('../src/dovecote/webapp/static', import.meta.url));

export default defineConfig({
  plugins: [react()],
  base: '/',
  resolve: {
    alias: {
      // Its package.json names dist/index.esm.js, which the package does not ship.
      'react-svg-credit-card-payment-icons': fileURLToPath(
        new URL('./node_modules/react-svg-credit-card-payment-icons/dist/index.mjs', import.meta.url),
      ),
    },
  },
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    // Many small icon fonts/images would otherwise become data: URLs; files keep the CSP simple.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 2500,
    rollupOptions: {
      output: {
        // Stable, content-hashed names: the server caches everything under assets/ as immutable.
        entryFileNames: 'assets/[name]-[hash].js',
        chunkFileNames: 'assets/[name]-[hash].js',
        assetFileNames: 'assets/[name]-[hash][extname]',
        // React in its own long-cached chunk, shared by the sign-in page and the messenger; the
        // messenger (react-core, react-ui, MUI) is a lazy chunk loaded after sign-in, and the
        // 1 MB pdf.js worker is a separate file fetched only when a PDF is previewed.
        manualChunks(id) {
          if (!id.includes('node_modules')) return undefined;
          if (id.includes('/react-dom/') || id.includes('/react/') || id.includes('/scheduler/')) {
            return 'react';
          }
          return undefined;
        },
      },
    },
  },
});
