/** The Node release the prebuilds are built against and the second suite runs on. */
export declare const NODE_VERSION: string;
/** Returns the unpacked `package/` folder of node-linux-<arch>@<version> (bin/node, include/node), fetching it into the cache when absent. */
export declare function nodeBinary(arch: 'x64' | 'arm64', version?: string): string;
