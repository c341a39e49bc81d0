import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The build goes into the API server crate, which embeds it (and is committed, so
// `cargo build` never needs Node). `npm run dev` proxies the API to a running server.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../crates/sympozium-apiserver/ui-dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: {
      "/api": process.env.SYMPOZIUM_API ?? "http://127.0.0.1:8080",
      "/ws": { target: process.env.SYMPOZIUM_API ?? "http://127.0.0.1:8080", ws: true },
    },
  },
});
