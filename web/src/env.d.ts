// esbuild inlines imported CSS into the page.
declare module "*.css";
