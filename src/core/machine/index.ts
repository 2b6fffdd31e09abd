/** The machine model: parsers for /proc and /sys text, the model, and its renderers. */
export * from "./bootparams.js";
export * from "./build.js";
export * from "./cpuinfo.js";
export * from "./crashkernel.js";
export * from "./files.js";
export * from "./iomem.js";
export * from "./kernelfiles.js";
export * from "./memmap.js";
export * from "./model.js";
export * from "./render.js";
