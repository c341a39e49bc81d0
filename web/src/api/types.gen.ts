// Generated from the Rust types of sympozium-api and sympozium-apiserver; do not edit.
// Regenerate with `make web-types`.

/** Kubernetes object metadata (the fields the dashboard reads). */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  generateName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** AgentRun (sympozium.ai/v1alpha1). */
export interface AgentRun {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    /** Which agent runs: `primary`, `web-endpoint`, `schedule-<name>`, … */
    agentId: string;
    /** Kubernetes agent-sandbox settings. */
    agentSandbox?: {
      /** Run as an agent-sandbox `Sandbox`. */
      enabled: boolean;
      /** Sandbox resources. */
      resources?: {
        /** Resource limits. */
        limits?: Record<string, string> | null;
        /** Requested resources, e.g. `{cpu: 100m, memory: 128Mi}`. */
        requests?: Record<string, string> | null;
      } | null;
      /** RuntimeClass, e.g. `gvisor`. */
      runtimeClass?: string | null;
      /** Warm pool to claim a sandbox from. */
      warmPoolRef?: string | null;
    } | null;
    /** What happens to the pod after the run. */
    cleanup?: "delete" | "keep";
    /** Extra environment variables for the agent and hook containers. Variables Sympozium */
    env?: Record<string, string> | null;
    /** Pull secrets for the run's pods. */
    imagePullSecrets?: ({
      /** Name of the referent. This field is effectively required, but due to backwards compatibility is allowed to be empty. Instances of this type with an empty value here are almost certainly wrong. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#names */
      name: string;
    })[];
    /** The SympoziumInstance this run belongs to. */
    instanceRef: string;
    /** Pre/post-run hooks. */
    lifecycle?: {
      /** Containers run in a follow-up Job after the agent finishes. */
      postRun?: ({
        /** Arguments. */
        args?: string[];
        /** Entrypoint override. */
        command?: string[];
        /** Environment variables. */
        env?: ({
          /** Variable name. */
          name: string;
          /** Variable value. */
          value: string;
        })[];
        /** Container image. */
        image: string;
        /** Container name (a DNS label). */
        name: string;
        /** Hook timeout as a Go duration (e.g. `2m`). */
        timeout?: string | null;
      })[];
      /** Containers run as init containers before the agent starts. */
      preRun?: ({
        /** Arguments. */
        args?: string[];
        /** Entrypoint override. */
        command?: string[];
        /** Environment variables. */
        env?: ({
          /** Variable name. */
          name: string;
          /** Variable value. */
          value: string;
        })[];
        /** Container image. */
        image: string;
        /** Container name (a DNS label). */
        name: string;
        /** Hook timeout as a Go duration (e.g. `2m`). */
        timeout?: string | null;
      })[];
      /** Extra RBAC the hooks need, bound for the run only. */
      rbac?: ({
        /** API groups (`""` is the core group). */
        apiGroups: string[];
        /** Resources, e.g. `pods` or `pods/log`. */
        resources: string[];
        /** Verbs, e.g. `get`, `list`, `watch`. */
        verbs: string[];
      })[];
    } | null;
    /** `task` runs once; `server` keeps a Deployment serving requests. */
    mode?: "task" | "server";
    /** Model and provider. */
    model: {
      /** Secret holding the provider API key; may be empty (e.g. local models). */
      authSecretRef: string;
      /** OpenAI-compatible base URL override. */
      baseURL?: string | null;
      /** Model name. */
      model: string;
      /** Node selector for the run's pod. */
      nodeSelector?: Record<string, string> | null;
      /** Provider: `openai`, `anthropic`, `azure-openai`, `ollama`, `bedrock`, … */
      provider: string;
      /** Agent reasoning effort; mapped to each provider's reasoning control by the runner. */
      thinking?: "off" | "low" | "medium" | "high" | null;
    };
    /** Set on sub-agent runs: who spawned this run. */
    parent?: {
      /** Parent AgentRun name. */
      runName: string;
      /** Parent session key. */
      sessionKey: string;
      /** Depth of this run in the spawn tree (children of a top-level run have depth 1). */
      spawnDepth: number;
    } | null;
    /** Sandbox container settings. */
    sandbox?: {
      /** Run commands in a sandbox container. */
      enabled: boolean;
      /** Sandbox image. */
      image?: string | null;
      /** Sandbox resources. */
      resources?: {
        /** Resource limits. */
        limits?: Record<string, string> | null;
        /** Requested resources, e.g. `{cpu: 100m, memory: 128Mi}`. */
        requests?: Record<string, string> | null;
      } | null;
      /** Security context of the sandbox. */
      securityContext?: {
        /** Capabilities to drop. */
        capabilities?: {
          /** Capabilities to drop, e.g. `ALL`. */
          drop?: string[];
        } | null;
        /** Mount the root filesystem read-only. */
        readOnlyRootFilesystem?: boolean | null;
        /** Refuse to run as root. */
        runAsNonRoot?: boolean | null;
        /** Seccomp profile. */
        seccompProfile?: {
          /** Profile type. */
          type: "RuntimeDefault" | "Unconfined" | "Localhost";
        } | null;
      } | null;
    } | null;
    /** Conversation/session key; may be empty. */
    sessionKey: string;
    /** Skills granted to this run. */
    skills?: ({
      /** Name of a ConfigMap holding skill Markdown files. */
      configMapRef?: string | null;
      /** Parameters, exposed to the skill sidecar as `SKILL_<KEY>` environment variables. */
      params?: Record<string, string> | null;
      /** Name of a SkillPack. */
      skillPackRef?: string | null;
    })[];
    /** System prompt override. */
    systemPrompt?: string | null;
    /** The task for the agent. */
    task: string;
    /** Run timeout as a duration, e.g. `10m0s`. */
    timeout?: string | null;
    /** Which tools the agent may use. */
    toolPolicy?: {
      /** Tools the agent may use. Empty means no allow-list. Names are exact: built-in */
      allow?: string[];
      /** Tools the agent must never use; deny wins over allow. */
      deny?: string[];
    } | null;
  };
  status?: {
    /** When the run finished. */
    completedAt?: string | null;
    /** Standard conditions. */
    conditions?: ({
      /** lastTransitionTime is the last time the condition transitioned from one status to another. This should be when the underlying condition changed.  If that is not known, then using the time when the API field changed is acceptable. */
      lastTransitionTime: string;
      /** message is a human readable message indicating details about the transition. This may be an empty string. */
      message: string;
      /** observedGeneration represents the .metadata.generation that the condition was set based upon. For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the current state of the instance. */
      observedGeneration?: number;
      /** reason contains a programmatic identifier indicating the reason for the condition's last transition. Producers of specific condition types may define expected values and meanings for this field, and whether the values are considered a guaranteed API. The value should be a CamelCase string. This field may not be empty. */
      reason: string;
      /** status of the condition, one of True, False, Unknown. */
      status: string;
      /** type of condition in CamelCase or in foo.example.com/CamelCase. */
      type: string;
    })[];
    /** What the run's tokens cost, by the price table of `SympoziumConfig` (absent for a */
    cost?: {
      /** Currency of the amounts. */
      currency: string;
      /** Cost of the input tokens. */
      input: string;
      /** Cost of the output tokens. */
      output: string;
      /** The price-table entry used. */
      pricedAs: string;
      /** Input plus output. */
      total: string;
    } | null;
    /** Deployment name (server mode). */
    deploymentName?: string | null;
    /** Why the run failed. */
    error?: string | null;
    /** Exit code, set when post-run hooks ran. */
    exitCode?: number | null;
    /** Job name. */
    jobName?: string | null;
    /** Phases of an AgentRun. */
    phase?: "Pending" | "Running" | "Serving" | "PostRunning" | "Succeeded" | "Failed" | null;
    /** Agent pod name. */
    podName?: string | null;
    /** Post-run Job name. */
    postRunJobName?: string | null;
    /** The agent's final answer (truncated to keep the object small). */
    result?: string | null;
    /** SandboxClaim name (warm pool). */
    sandboxClaimName?: string | null;
    /** Sandbox name (agent-sandbox mode). */
    sandboxName?: string | null;
    /** Service name (server mode). */
    serviceName?: string | null;
    /** When the agent started. */
    startedAt?: string | null;
    /** Tokens and tool calls used. */
    tokenUsage?: {
      /** Wall-clock duration in milliseconds. */
      durationMs?: number;
      /** Prompt tokens. */
      inputTokens?: number;
      /** Completion tokens. */
      outputTokens?: number;
      /** Number of tool calls. */
      toolCalls?: number;
      /** Sum of input and output tokens. */
      totalTokens?: number;
    } | null;
    /** W3C trace ID of the run. */
    traceID?: string | null;
  } | null;
}

/** MCPServer (sympozium.ai/v1alpha1). */
export interface MCPServer {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    /** Key in `authSecret` (default `token`). */
    authKey?: string | null;
    /** Secret (in this namespace) holding a token sent as `Authorization: Bearer <token>` */
    authSecret?: string | null;
    /** How to run the server in the cluster. */
    deployment?: {
      /** Arguments. */
      args?: string[];
      /** Command (stdio servers). */
      cmd?: string | null;
      /** Environment variables. */
      env?: Record<string, string> | null;
      /** Server image. */
      image: string;
      /** HTTP path of the MCP endpoint (default `/mcp`; the stdio adapter also answers on `/`). */
      path?: string | null;
      /** Port the server (or adapter) listens on. */
      port?: number;
      /** Container resources. */
      resources?: {
        /** Claims lists the names of resources, defined in spec.resourceClaims, that are used by this container. */
        claims?: ({
          /** Name must match the name of one entry in pod.spec.resourceClaims of the Pod where this field is used. It makes that resource available inside a container. */
          name: string;
          /** Request is the name chosen for a request in the referenced claim. If empty, everything from the claim is made available, otherwise only the result of this request. */
          request?: string;
        })[];
        /** Limits describes the maximum amount of compute resources allowed. More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/ */
        limits?: Record<string, number | string>;
        /** Requests describes the minimum amount of compute resources required. If Requests is omitted for a container, it defaults to Limits if that is explicitly specified, otherwise to an implementation-defined value. Requests cannot exceed Limits. More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/ */
        requests?: Record<string, number | string>;
      } | null;
      /** Secrets exposed as environment variables. */
      secretRefs?: ({
        /** Secret name. */
        name: string;
      })[];
      /** ServiceAccount of the server pods. */
      serviceAccountName?: string | null;
    } | null;
    /** Extra HTTP headers sent to the server (not secret: use `authSecret` for credentials). */
    headers?: Record<string, string> | null;
    /** Replicas of the Deployment. */
    replicas?: number;
    /** Per-call timeout in seconds. */
    timeout?: number;
    /** Only these tools are exposed. */
    toolsAllow?: string[];
    /** These tools are never exposed. */
    toolsDeny?: string[];
    /** Prefix of the tool names. */
    toolsPrefix: string;
    /** How Sympozium talks to the server. */
    transportType: "stdio" | "http";
    /** URL of an external server; no Deployment is created. */
    url?: string | null;
  };
  status?: {
    /** Standard conditions (`Deployed`, `Ready`). */
    conditions?: ({
      /** lastTransitionTime is the last time the condition transitioned from one status to another. This should be when the underlying condition changed.  If that is not known, then using the time when the API field changed is acceptable. */
      lastTransitionTime: string;
      /** message is a human readable message indicating details about the transition. This may be an empty string. */
      message: string;
      /** observedGeneration represents the .metadata.generation that the condition was set based upon. For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the current state of the instance. */
      observedGeneration?: number;
      /** reason contains a programmatic identifier indicating the reason for the condition's last transition. Producers of specific condition types may define expected values and meanings for this field, and whether the values are considered a guaranteed API. The value should be a CamelCase string. This field may not be empty. */
      reason: string;
      /** status of the condition, one of True, False, Unknown. */
      status: string;
      /** type of condition in CamelCase or in foo.example.com/CamelCase. */
      type: string;
    })[];
    /** Why the last discovery failed (cleared when it succeeds). */
    lastError?: string | null;
    /** The server answers. */
    ready?: boolean;
    /** Number of tools it offers. */
    toolCount?: number | null;
    /** Names of the tools it offers (after `toolsAllow`/`toolsDeny`; agents see them as */
    tools?: string[];
    /** Where runs reach it. */
    url?: string | null;
  } | null;
}

/** PersonaPack (sympozium.ai/v1alpha1). */
export interface PersonaPack {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    /** Agent-sandbox settings for every generated instance. */
    agentSandbox?: {
      /** Run agents as agent-sandbox `Sandbox` objects. */
      enabled: boolean;
      /** RuntimeClass for sandboxed pods, e.g. `gvisor` or `kata`. */
      runtimeClass?: string | null;
      /** Pre-warmed sandboxes for instant starts. */
      warmPool?: {
        /** Resources of each pooled sandbox. */
        resources?: {
          /** Resource limits. */
          limits?: Record<string, string> | null;
          /** Requested resources, e.g. `{cpu: 100m, memory: 128Mi}`. */
          requests?: Record<string, string> | null;
        } | null;
        /** RuntimeClass of the pooled sandboxes (defaults to the instance's). */
        runtimeClass?: string | null;
        /** Number of sandboxes kept warm. */
        size?: number;
      } | null;
    } | null;
    /** Provider credentials copied to every generated instance. */
    authRefs?: ({
      /** Provider whose credentials the Secret holds. */
      provider?: string | null;
      /** Secret name. Required by the schema but may be empty (Go clients always send it). */
      secret: string;
    })[];
    /** OpenAI-compatible base URL for every generated instance. */
    baseURL?: string | null;
    /** Catalog category, e.g. `platform`. */
    category?: string | null;
    /** Channel type → access control. */
    channelAccessControl?: Record<string, {
      /** Chat IDs the agent answers in; empty allows every chat. */
      allowedChats?: string[];
      /** Sender IDs allowed to talk to the agent; empty allows everyone not denied. */
      allowedSenders?: string[];
      /** Sender IDs that are always refused. */
      deniedSenders?: string[];
      /** Reply sent to refused senders; silence when unset. */
      denyMessage?: string | null;
    }> | null;
    /** Channel type → Secret with its credentials. */
    channelConfigs?: Record<string, string> | null;
    /** What the team does. */
    description?: string | null;
    /** Stamp out the team. Unset or false keeps the pack a catalog entry. */
    enabled?: boolean | null;
    /** Personas not to stamp out. */
    excludePersonas?: string[];
    /** The team members. */
    personas: ({
      /** Channel types this persona listens on. */
      channels?: string[];
      /** Human-friendly name. */
      displayName?: string | null;
      /** Pre/post-run hooks. */
      lifecycle?: {
        /** Containers run in a follow-up Job after the agent finishes. */
        postRun?: ({
          /** Arguments. */
          args?: string[];
          /** Entrypoint override. */
          command?: string[];
          /** Environment variables. */
          env?: ({
            /** Variable name. */
            name: string;
            /** Variable value. */
            value: string;
          })[];
          /** Container image. */
          image: string;
          /** Container name (a DNS label). */
          name: string;
          /** Hook timeout as a Go duration (e.g. `2m`). */
          timeout?: string | null;
        })[];
        /** Containers run as init containers before the agent starts. */
        preRun?: ({
          /** Arguments. */
          args?: string[];
          /** Entrypoint override. */
          command?: string[];
          /** Environment variables. */
          env?: ({
            /** Variable name. */
            name: string;
            /** Variable value. */
            value: string;
          })[];
          /** Container image. */
          image: string;
          /** Container name (a DNS label). */
          name: string;
          /** Hook timeout as a Go duration (e.g. `2m`). */
          timeout?: string | null;
        })[];
        /** Extra RBAC the hooks need, bound for the run only. */
        rbac?: ({
          /** API groups (`""` is the core group). */
          apiGroups: string[];
          /** Resources, e.g. `pods` or `pods/log`. */
          resources: string[];
          /** Verbs, e.g. `get`, `list`, `watch`. */
          verbs: string[];
        })[];
      } | null;
      /** Seeded memory. */
      memory?: {
        /** Memory on (always on for personas). */
        enabled?: boolean;
        /** Initial memories. */
        seeds?: string[];
      } | null;
      /** Model (defaults to the pack activation's choice). */
      model?: string | null;
      /** Name; the generated instance is `<pack>-<name>`. */
      name: string;
      /** Recurring work. */
      schedule?: {
        /** 5-field cron expression; wins over `interval`. */
        cron?: string | null;
        /** Interval such as `5m`, `30m`, `1h`, `24h`. */
        interval?: string | null;
        /** The task run on every tick. */
        task: string;
        /** Kind of schedule. */
        type?: "heartbeat" | "scheduled" | "sweep";
      } | null;
      /** SkillPack names (`mcp-bridge` is a marker and is skipped). */
      skills?: string[];
      /** The persona's system prompt. */
      systemPrompt: string;
      /** Tools this persona may use. */
      toolPolicy?: {
        /** Tools the agent may use. Empty means no allow-list. Names are exact: built-in */
        allow?: string[];
        /** Tools the agent must never use; deny wins over allow. */
        deny?: string[];
      } | null;
      /** Web endpoint for this persona. */
      webEndpoint?: {
        /** Expose the persona over HTTP. */
        enabled: boolean;
        /** Public hostname. */
        hostname?: string | null;
      } | null;
    })[];
    /** SympoziumPolicy for every generated instance. */
    policyRef?: string | null;
    /** Sandbox container settings for every generated instance */
    sandbox?: {
      /** Run commands in a sandbox container. */
      enabled: boolean;
      /** Sandbox image. */
      image?: string | null;
      /** Sandbox container resources. */
      resources?: {
        /** Claims lists the names of resources, defined in spec.resourceClaims, that are used by this container. */
        claims?: ({
          /** Name must match the name of one entry in pod.spec.resourceClaims of the Pod where this field is used. It makes that resource available inside a container. */
          name: string;
          /** Request is the name chosen for a request in the referenced claim. If empty, everything from the claim is made available, otherwise only the result of this request. */
          request?: string;
        })[];
        /** Limits describes the maximum amount of compute resources allowed. More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/ */
        limits?: Record<string, number | string>;
        /** Requests describes the minimum amount of compute resources required. If Requests is omitted for a container, it defaults to Limits if that is explicitly specified, otherwise to an implementation-defined value. Requests cannot exceed Limits. More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/ */
        requests?: Record<string, number | string>;
      } | null;
    } | null;
    /** SkillPack name → parameters. */
    skillParams?: Record<string, Record<string, string>> | null;
    /** Team objective wrapped around every persona's task. */
    taskOverride?: string | null;
    /** Pack version. */
    version?: string | null;
  };
  status?: {
    /** Standard conditions. */
    conditions?: ({
      /** lastTransitionTime is the last time the condition transitioned from one status to another. This should be when the underlying condition changed.  If that is not known, then using the time when the API field changed is acceptable. */
      lastTransitionTime: string;
      /** message is a human readable message indicating details about the transition. This may be an empty string. */
      message: string;
      /** observedGeneration represents the .metadata.generation that the condition was set based upon. For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the current state of the instance. */
      observedGeneration?: number;
      /** reason contains a programmatic identifier indicating the reason for the condition's last transition. Producers of specific condition types may define expected values and meanings for this field, and whether the values are considered a guaranteed API. The value should be a CamelCase string. This field may not be empty. */
      reason: string;
      /** status of the condition, one of True, False, Unknown. */
      status: string;
      /** type of condition in CamelCase or in foo.example.com/CamelCase. */
      type: string;
    })[];
    /** Personas stamped out. */
    installedCount?: number;
    /** What was stamped out. */
    installedPersonas?: ({
      /** Generated SympoziumInstance. */
      instanceName: string;
      /** Persona name. */
      name: string;
      /** Generated SympoziumSchedule. */
      scheduleName?: string | null;
    })[];
    /** Personas in the pack. */
    personaCount?: number;
    /** `Ready`, `Error` or `Inactive`. */
    phase?: string | null;
  } | null;
}

/** SkillPack (sympozium.ai/v1alpha1). */
export interface SkillPack {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    /** Catalog category. */
    category?: string | null;
    /** Informational runtime needs. */
    runtimeRequirements?: {
      /** Suggested image. */
      image?: string | null;
      /** Minimum CPU, e.g. `100m`. */
      minCPU?: string | null;
      /** Minimum memory, e.g. `256Mi`. */
      minMemory?: string | null;
      /** Needs a sandbox. */
      sandbox?: boolean | null;
    } | null;
    /** Sidecar that executes commands for the agent. */
    sidecar?: {
      /** Cluster-wide RBAC granted for the run. */
      clusterRBAC?: ({
        /** API groups (`""` is the core group). */
        apiGroups: string[];
        /** Resources, e.g. `pods` or `pods/log`. */
        resources: string[];
        /** Verbs, e.g. `get`, `list`, `watch`. */
        verbs: string[];
      })[];
      /** Entrypoint; the image's CMD runs when empty. */
      command?: string[];
      /** Environment variables. */
      env?: ({
        /** Variable name. */
        name: string;
        /** Variable value. */
        value: string;
      })[];
      /** Host access (only honoured when the policy allows host mounts). */
      hostAccess?: {
        /** Turn host access on. */
        enabled?: boolean | null;
        /** Use the host network. */
        hostNetwork?: boolean | null;
        /** Use the host PID namespace. */
        hostPID?: boolean | null;
        /** Host paths mounted into the sidecar. */
        mounts?: ({
          /** Path on the node. */
          hostPath: string;
          /** Path in the container. */
          mountPath: string;
          /** Mount read-only (default true). */
          readOnly?: boolean;
        })[];
        /** Run privileged. */
        privileged?: boolean | null;
        /** Run as root. */
        runAsRoot?: boolean | null;
      } | null;
      /** Sidecar image. */
      image: string;
      /** Mount the shared `/workspace` (default true). */
      mountWorkspace?: boolean | null;
      /** Ports the sidecar listens on. */
      ports?: ({
        /** Port number. */
        containerPort: number;
        /** Port name. */
        name: string;
        /** `TCP` (default), `UDP` or `SCTP`. */
        protocol?: string | null;
      })[];
      /** Namespaced RBAC granted for the run. */
      rbac?: ({
        /** API groups (`""` is the core group). */
        apiGroups: string[];
        /** Resources, e.g. `pods` or `pods/log`. */
        resources: string[];
        /** Verbs, e.g. `get`, `list`, `watch`. */
        verbs: string[];
      })[];
      /** Run the sidecar as a long-lived Deployment (serving). */
      requiresServer?: boolean | null;
      /** CPU and memory, used as both request and limit. */
      resources?: {
        /** CPU, e.g. `100m`. */
        cpu?: string | null;
        /** Memory, e.g. `128Mi`. */
        memory?: string | null;
      } | null;
      /** Where the secret is mounted (default `/secrets/<secretRef>`). */
      secretMountPath?: string | null;
      /** Secret mounted read-only into the sidecar. */
      secretRef?: string | null;
    } | null;
    /** The skills; each becomes `<name>.md` in the pack's ConfigMap. */
    skills: ({
      /** Markdown instructions. */
      content: string;
      /** One-line description. */
      description?: string | null;
      /** Skill name; the file is `<name>.md`. */
      name: string;
      /** What the skill needs (informational). */
      requires?: {
        /** Binaries on the sidecar's PATH. */
        bins?: string[];
        /** Agent tools. */
        tools?: string[];
      } | null;
    })[];
    /** Where the pack came from. */
    source?: string | null;
    /** Pack version. */
    version?: string | null;
  };
  status?: {
    /** Standard conditions. */
    conditions?: ({
      /** lastTransitionTime is the last time the condition transitioned from one status to another. This should be when the underlying condition changed.  If that is not known, then using the time when the API field changed is acceptable. */
      lastTransitionTime: string;
      /** message is a human readable message indicating details about the transition. This may be an empty string. */
      message: string;
      /** observedGeneration represents the .metadata.generation that the condition was set based upon. For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the current state of the instance. */
      observedGeneration?: number;
      /** reason contains a programmatic identifier indicating the reason for the condition's last transition. Producers of specific condition types may define expected values and meanings for this field, and whether the values are considered a guaranteed API. The value should be a CamelCase string. This field may not be empty. */
      reason: string;
      /** status of the condition, one of True, False, Unknown. */
      status: string;
      /** type of condition in CamelCase or in foo.example.com/CamelCase. */
      type: string;
    })[];
    /** The ConfigMap holding the skills (same name as the pack). */
    configMapName?: string | null;
    /** `Ready` once the ConfigMap exists. */
    phase?: string | null;
    /** Number of skills. */
    skillCount?: number;
  } | null;
}

/** SympoziumConfig (sympozium.ai/v1alpha1). */
export interface SympoziumConfig {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    /** The shared Gateway API gateway for web endpoints. */
    gateway?: {
      /** Base domain; endpoints get `<instance>.<baseDomain>`. */
      baseDomain?: string | null;
      /** Create the Gateway. */
      enabled?: boolean;
      /** GatewayClass name. */
      gatewayClassName?: string;
      /** Gateway name. */
      name?: string;
      /** TLS settings. */
      tls?: {
        /** cert-manager ClusterIssuer for the wildcard certificate. */
        certManagerClusterIssuer?: string | null;
        /** Terminate TLS at the gateway. */
        enabled?: boolean;
        /** Secret holding the wildcard certificate. */
        secretName?: string;
      } | null;
    } | null;
    /** Token prices for run cost (`status.cost` of AgentRuns, totals on instances); built-in */
    pricing?: {
      /** Currency of every price and cost (default `USD`). */
      currency?: string | null;
      /** Use only `models`, not the built-in defaults. */
      disableDefaults?: boolean;
      /** Prices by model name; they override the built-in defaults. A name also prices */
      models?: Record<string, {
        /** Price of one million prompt (input) tokens, e.g. `"2.50"`. */
        inputPerMillion: string;
        /** Price of one million completion (output) tokens, e.g. `"10"`. */
        outputPerMillion: string;
      }>;
    } | null;
  };
  status?: {
    /** Standard conditions (type `Ready`). */
    conditions?: ({
      /** lastTransitionTime is the last time the condition transitioned from one status to another. This should be when the underlying condition changed.  If that is not known, then using the time when the API field changed is acceptable. */
      lastTransitionTime: string;
      /** message is a human readable message indicating details about the transition. This may be an empty string. */
      message: string;
      /** observedGeneration represents the .metadata.generation that the condition was set based upon. For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the current state of the instance. */
      observedGeneration?: number;
      /** reason contains a programmatic identifier indicating the reason for the condition's last transition. Producers of specific condition types may define expected values and meanings for this field, and whether the values are considered a guaranteed API. The value should be a CamelCase string. This field may not be empty. */
      reason: string;
      /** status of the condition, one of True, False, Unknown. */
      status: string;
      /** type of condition in CamelCase or in foo.example.com/CamelCase. */
      type: string;
    })[];
    /** Gateway state. */
    gateway?: {
      /** Its address. */
      address?: string | null;
      /** Number of listeners. */
      listenerCount?: number | null;
      /** The Gateway is programmed. */
      ready: boolean;
    } | null;
    /** `Disabled`, `Pending`, `Ready` or `Error`. */
    phase?: string | null;
  } | null;
}

/** SympoziumInstance (sympozium.ai/v1alpha1). */
export interface SympoziumInstance {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    /** Agent configuration. */
    agents: {
      /** The configuration every run uses unless it overrides it. */
      default: {
        /** Kubernetes agent-sandbox settings. */
        agentSandbox?: {
          /** Run agents as agent-sandbox `Sandbox` objects. */
          enabled: boolean;
          /** RuntimeClass for sandboxed pods, e.g. `gvisor` or `kata`. */
          runtimeClass?: string | null;
          /** Pre-warmed sandboxes for instant starts. */
          warmPool?: {
            /** Resources of each pooled sandbox. */
            resources?: {
              /** Resource limits. */
              limits?: Record<string, string> | null;
              /** Requested resources, e.g. `{cpu: 100m, memory: 128Mi}`. */
              requests?: Record<string, string> | null;
            } | null;
            /** RuntimeClass of the pooled sandboxes (defaults to the instance's). */
            runtimeClass?: string | null;
            /** Number of sandboxes kept warm. */
            size?: number;
          } | null;
        } | null;
        /** OpenAI-compatible base URL override. */
        baseURL?: string | null;
        /** Pre/post-run hooks. */
        lifecycle?: {
          /** Containers run in a follow-up Job after the agent finishes. */
          postRun?: ({
            /** Arguments. */
            args?: string[];
            /** Entrypoint override. */
            command?: string[];
            /** Environment variables. */
            env?: ({
              /** Variable name. */
              name: string;
              /** Variable value. */
              value: string;
            })[];
            /** Container image. */
            image: string;
            /** Container name (a DNS label). */
            name: string;
            /** Hook timeout as a Go duration (e.g. `2m`). */
            timeout?: string | null;
          })[];
          /** Containers run as init containers before the agent starts. */
          preRun?: ({
            /** Arguments. */
            args?: string[];
            /** Entrypoint override. */
            command?: string[];
            /** Environment variables. */
            env?: ({
              /** Variable name. */
              name: string;
              /** Variable value. */
              value: string;
            })[];
            /** Container image. */
            image: string;
            /** Container name (a DNS label). */
            name: string;
            /** Hook timeout as a Go duration (e.g. `2m`). */
            timeout?: string | null;
          })[];
          /** Extra RBAC the hooks need, bound for the run only. */
          rbac?: ({
            /** API groups (`""` is the core group). */
            apiGroups: string[];
            /** Resources, e.g. `pods` or `pods/log`. */
            resources: string[];
            /** Verbs, e.g. `get`, `list`, `watch`. */
            verbs: string[];
          })[];
        } | null;
        /** Model name, e.g. `gpt-4.1` or `claude-sonnet-4-20250514`. */
        model: string;
        /** Models tried in order when the run's own model fails (after its retries). Additive to */
        modelFallbacks?: ({
          /** Key of that Secret holding the API key; default `<PROVIDER>_API_KEY` (e.g. */
          authSecretKey?: string | null;
          /** Secret (in the run's namespace) holding this model's API key; unset for keyless models. */
          authSecretRef?: string | null;
          /** OpenAI-compatible base URL override. */
          baseURL?: string | null;
          /** Model name. */
          model: string;
          /** Provider: `openai`, `anthropic`, `azure-openai`, `ollama`, `bedrock`, … */
          provider: string;
        })[];
        /** Node selector for agent pods. */
        nodeSelector?: Record<string, string> | null;
        /** Whole-run timeout as a Go duration, e.g. `30m`. */
        runTimeout?: string | null;
        /** Sandbox container settings. */
        sandbox?: {
          /** Run commands in a sandbox container. */
          enabled: boolean;
          /** Sandbox image. */
          image?: string | null;
          /** Sandbox container resources. */
          resources?: {
            /** Claims lists the names of resources, defined in spec.resourceClaims, that are used by this container. */
            claims?: ({
              /** Name must match the name of one entry in pod.spec.resourceClaims of the Pod where this field is used. It makes that resource available inside a container. */
              name: string;
              /** Request is the name chosen for a request in the referenced claim. If empty, everything from the claim is made available, otherwise only the result of this request. */
              request?: string;
            })[];
            /** Limits describes the maximum amount of compute resources allowed. More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/ */
            limits?: Record<string, number | string>;
            /** Requests describes the minimum amount of compute resources required. If Requests is omitted for a container, it defaults to Limits if that is explicitly specified, otherwise to an implementation-defined value. Requests cannot exceed Limits. More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/ */
            requests?: Record<string, number | string>;
          } | null;
        } | null;
        /** Limits on sub-agents spawned by runs. */
        subagents?: {
          /** Maximum children one agent may spawn. */
          maxChildrenPerAgent?: number;
          /** Maximum sub-agents running at once. */
          maxConcurrent?: number;
          /** Maximum spawn depth. */
          maxDepth?: number;
        } | null;
        /** Agent reasoning effort; mapped to each provider's reasoning control by the runner. */
        thinking?: "off" | "low" | "medium" | "high" | null;
        /** Which tools this agent's runs may use (a persona's tool policy). Additive to the */
        toolPolicy?: {
          /** Tools the agent may use. Empty means no allow-list. Names are exact: built-in */
          allow?: string[];
          /** Tools the agent must never use; deny wins over allow. */
          deny?: string[];
        } | null;
      };
    };
    /** Provider credentials (`{provider, secret}`). */
    authRefs?: ({
      /** Provider whose credentials the Secret holds. */
      provider?: string | null;
      /** Secret name. Required by the schema but may be empty (Go clients always send it). */
      secret: string;
    })[];
    /** Chat channels this agent is reachable on; one Deployment per channel. */
    channels?: ({
      /** Who may talk to the agent through this channel. */
      accessControl?: {
        /** Chat IDs the agent answers in; empty allows every chat. */
        allowedChats?: string[];
        /** Sender IDs allowed to talk to the agent; empty allows everyone not denied. */
        allowedSenders?: string[];
        /** Sender IDs that are always refused. */
        deniedSenders?: string[];
        /** Reply sent to refused senders; silence when unset. */
        denyMessage?: string | null;
      } | null;
      /** Secret with the channel credentials; may be empty for whatsapp (QR pairing). */
      configRef?: {
        /** Provider whose credentials the Secret holds. */
        provider?: string | null;
        /** Secret name. Required by the schema but may be empty (Go clients always send it). */
        secret: string;
      };
      /** Channel type. */
      type: "telegram" | "slack" | "discord" | "whatsapp";
    })[];
    /** Pull secrets for every pod created for this instance. */
    imagePullSecrets?: ({
      /** Name of the referent. This field is effectively required, but due to backwards compatibility is allowed to be empty. Instances of this type with an empty value here are almost certainly wrong. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#names */
      name: string;
    })[];
    /** MCP tool servers available to runs. */
    mcpServers?: ({
      /** Key in `authSecret` (default `token`). */
      authKey?: string | null;
      /** Secret holding the bearer token. */
      authSecret?: string | null;
      /** Extra HTTP headers. */
      headers?: Record<string, string> | null;
      /** Server name (an MCPServer in the namespace when `url` is unset). */
      name: string;
      /** Per-call timeout in seconds. */
      timeout?: number;
      /** Only these tools are exposed. */
      toolsAllow?: string[];
      /** These tools are never exposed. */
      toolsDeny?: string[];
      /** Prefix of the tool names, e.g. `gh` gives `gh_create_issue`. */
      toolsPrefix: string;
      /** Server URL; when unset the MCPServer named `name` supplies it. */
      url?: string | null;
    })[];
    /** Persistent memory settings. */
    memory?: {
      /** Store a summary of every successful run in the memory server (default true). */
      autoStore?: boolean | null;
      /** Give the agent persistent memory. */
      enabled?: boolean;
      /** Most memories the memory server keeps; a store beyond it is refused with a message */
      maxEntries?: number | null;
      /** Largest single memory, in bytes (unset: the server's default, 64 KiB). Additive to */
      maxEntryBytes?: number | null;
      /** Advisory size budget of the memory, in KiB. */
      maxSizeKB?: number;
      /** Most bytes of memory content the server keeps in total; a store beyond it is refused */
      maxTotalBytes?: number | null;
      /** System prompt of the agent (persona prompt for pack-generated instances). */
      systemPrompt?: string | null;
    } | null;
    /** OpenTelemetry settings for this instance's pods. */
    observability?: {
      /** Export traces and metrics. */
      enabled?: boolean;
      /** Extra OTLP headers. */
      headers?: Record<string, string> | null;
      /** Secret whose keys become OTLP headers. */
      headersSecretRef?: string | null;
      /** OTLP collector endpoint. */
      otlpEndpoint?: string | null;
      /** OTLP transport protocols. */
      otlpProtocol?: "grpc" | "http/protobuf" | null;
      /** Extra OpenTelemetry resource attributes. */
      resourceAttributes?: Record<string, string> | null;
      /** Trace sampling ratio between "0.0" and "1.0". */
      samplingRatio?: string | null;
      /** Service name override. */
      serviceName?: string | null;
    } | null;
    /** Name of a SympoziumPolicy in the same namespace. */
    policyRef?: string | null;
    /** Skills granted to every run of this instance. */
    skills?: ({
      /** Name of a ConfigMap holding skill Markdown files. */
      configMapRef?: string | null;
      /** Parameters, exposed to the skill sidecar as `SKILL_<KEY>` environment variables. */
      params?: Record<string, string> | null;
      /** Name of a SkillPack. */
      skillPackRef?: string | null;
    })[];
    /** Deprecated: use the `web-endpoint` skill instead. */
    webEndpoint?: {
      /** Secret holding the API key. */
      authSecretRef?: string | null;
      /** Expose the agent over HTTP. */
      enabled?: boolean;
      /** Public hostname. */
      hostname?: string | null;
      /** Request rate limit. */
      rateLimit?: {
        /** Burst size. */
        burstSize?: number;
        /** Sustained requests per minute. */
        requestsPerMinute?: number;
      } | null;
    } | null;
  };
  status?: {
    /** AgentRuns of this instance in phase Running or Serving. */
    activeAgentPods?: number;
    /** Per-channel health. */
    channels?: ({
      /** When the channel last reported its health. */
      lastHealthCheck?: string | null;
      /** Detail, e.g. the error. */
      message?: string | null;
      /** `Connected`, `Disconnected`, `Pending` or `Error`. */
      status: string;
      /** Channel type. */
      type: string;
    })[];
    /** Standard conditions. */
    conditions?: ({
      /** lastTransitionTime is the last time the condition transitioned from one status to another. This should be when the underlying condition changed.  If that is not known, then using the time when the API field changed is acceptable. */
      lastTransitionTime: string;
      /** message is a human readable message indicating details about the transition. This may be an empty string. */
      message: string;
      /** observedGeneration represents the .metadata.generation that the condition was set based upon. For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the current state of the instance. */
      observedGeneration?: number;
      /** reason contains a programmatic identifier indicating the reason for the condition's last transition. Producers of specific condition types may define expected values and meanings for this field, and whether the values are considered a guaranteed API. The value should be a CamelCase string. This field may not be empty. */
      reason: string;
      /** status of the condition, one of True, False, Unknown. */
      status: string;
      /** type of condition in CamelCase or in foo.example.com/CamelCase. */
      type: string;
    })[];
    /** What the instance's priced runs cost so far. */
    cost?: {
      /** Currency of the total. */
      currency: string;
      /** Runs included in the total. */
      runs: number;
      /** Sum of the priced runs' totals (kept when runs are pruned). */
      total: string;
    } | null;
    /** `Running`, `Serving` or `Error`. */
    phase?: string | null;
    /** AgentRuns ever created for this instance. */
    totalAgentRuns?: number;
    /** Web endpoint state. */
    webEndpoint?: {
      /** Secret holding the generated API key. */
      authSecretName?: string | null;
      /** Endpoint status. */
      status: string;
      /** Public URL. */
      url?: string | null;
    } | null;
  } | null;
}

/** SympoziumPolicy (sympozium.ai/v1alpha1). */
export interface SympoziumPolicy {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    /** Feature switches: `code-execution`, `sub-agents`, `browser-automation`, `file-access`. */
    featureGates?: Record<string, boolean> | null;
    /** Network isolation of agent pods. */
    networkPolicy?: {
      /** Allow DNS. */
      allowDNS?: boolean;
      /** Allow the NATS event bus. */
      allowEventBus?: boolean;
      /** Extra allowed destinations. */
      allowedEgress?: ({
        /** Host name, IP or CIDR. */
        host: string;
        /** Port; any port when unset. */
        port?: number | null;
      })[];
      /** Deny all egress not allowed below. */
      denyAll?: boolean;
    } | null;
    /** Sandboxing requirements. */
    sandboxPolicy?: {
      /** Kubernetes agent-sandbox requirements. */
      agentSandboxPolicy?: {
        /** RuntimeClasses runs may use; empty allows any. */
        allowedRuntimeClasses?: string[];
        /** RuntimeClass used when a run names none. */
        defaultRuntimeClass?: string | null;
        /** Every run must enable `spec.agentSandbox`. */
        required: boolean;
      } | null;
      /** Allow skill sidecars to mount host paths. */
      allowHostMounts?: boolean;
      /** Sandbox image used when a run names none. */
      defaultImage?: string | null;
      /** CPU ceiling, e.g. `2`. */
      maxCPU?: string | null;
      /** Memory ceiling, e.g. `4Gi`. */
      maxMemory?: string | null;
      /** Every run must enable `spec.sandbox`. */
      required: boolean;
      /** Seccomp profile for agent pods. */
      seccompProfile?: {
        /** Profile type. */
        type: "RuntimeDefault" | "Unconfined" | "Localhost";
      } | null;
    } | null;
    /** Sub-agent limits. */
    subagentPolicy?: {
      /** Maximum runs of an instance running at once. */
      maxConcurrent?: number;
      /** Maximum spawn depth. */
      maxDepth?: number;
    } | null;
    /** Which tools agents may call. */
    toolGating?: {
      /** Action for tools no rule names. */
      defaultAction?: "allow" | "deny" | "ask";
      /** Per-tool actions. */
      rules?: ({
        /** What happens when the agent calls it. */
        action: "allow" | "deny" | "ask";
        /** Tool name, exact: a built-in tool, or an MCP tool `<toolsPrefix>_<tool>` / */
        tool: string;
      })[];
    } | null;
  };
  status?: {
    /** Instances that reference this policy. */
    boundInstances?: number;
    /** Standard conditions. */
    conditions?: ({
      /** lastTransitionTime is the last time the condition transitioned from one status to another. This should be when the underlying condition changed.  If that is not known, then using the time when the API field changed is acceptable. */
      lastTransitionTime: string;
      /** message is a human readable message indicating details about the transition. This may be an empty string. */
      message: string;
      /** observedGeneration represents the .metadata.generation that the condition was set based upon. For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the current state of the instance. */
      observedGeneration?: number;
      /** reason contains a programmatic identifier indicating the reason for the condition's last transition. Producers of specific condition types may define expected values and meanings for this field, and whether the values are considered a guaranteed API. The value should be a CamelCase string. This field may not be empty. */
      reason: string;
      /** status of the condition, one of True, False, Unknown. */
      status: string;
      /** type of condition in CamelCase or in foo.example.com/CamelCase. */
      type: string;
    })[];
  } | null;
}

/** SympoziumSchedule (sympozium.ai/v1alpha1). */
export interface SympoziumSchedule {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    /** What to do when the previous run is still active. */
    concurrencyPolicy?: "Forbid" | "Allow" | "Replace";
    /** Prepend the instance's memory to the task (default true). */
    includeMemory?: boolean | null;
    /** The SympoziumInstance whose agent runs. */
    instanceRef: string;
    /** 5-field cron expression (minute hour day-of-month month day-of-week). */
    schedule: string;
    /** Pause the schedule. */
    suspend?: boolean | null;
    /** The task each run performs. */
    task: string;
    /** IANA time zone the cron expression is evaluated in, e.g. `Europe/Warsaw` (default */
    timeZone?: string | null;
    /** Kind of schedule (a label; all kinds behave alike). */
    type?: "heartbeat" | "scheduled" | "sweep";
  };
  status?: {
    /** Standard conditions. */
    conditions?: ({
      /** lastTransitionTime is the last time the condition transitioned from one status to another. This should be when the underlying condition changed.  If that is not known, then using the time when the API field changed is acceptable. */
      lastTransitionTime: string;
      /** message is a human readable message indicating details about the transition. This may be an empty string. */
      message: string;
      /** observedGeneration represents the .metadata.generation that the condition was set based upon. For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the current state of the instance. */
      observedGeneration?: number;
      /** reason contains a programmatic identifier indicating the reason for the condition's last transition. Producers of specific condition types may define expected values and meanings for this field, and whether the values are considered a guaranteed API. The value should be a CamelCase string. This field may not be empty. */
      reason: string;
      /** status of the condition, one of True, False, Unknown. */
      status: string;
      /** type of condition in CamelCase or in foo.example.com/CamelCase. */
      type: string;
    })[];
    /** Name of the last run. */
    lastRunName?: string | null;
    /** When the last run was created. */
    lastRunTime?: string | null;
    /** When the next run is due. */
    nextRunTime?: string | null;
    /** `Active`, `Suspended` or `Error`. */
    phase?: string | null;
    /** Runs created so far. */
    totalRuns?: number;
  } | null;
}

/** AWS credentials for one model-list call. */
export type BedrockModelsRequest = {
  /** Access key id. */
  accessKeyId?: string | null;
  /** AWS region (`us-east-1` when empty). */
  region?: string | null;
  /** Secret access key. */
  secretAccessKey?: string | null;
  /** Session token of temporary credentials. */
  sessionToken?: string | null;
};

/** One bucket of [`TimeSeries`]. */
export type Bucket = {
  /** Of which failed. */
  failed: number;
  /** Input tokens of those runs. */
  inputTokens: number;
  /** Output tokens of those runs. */
  outputTokens: number;
  /** Runs created in it. */
  runs: number;
  /** Tool calls of those runs. */
  toolCalls: number;
  /** Start of the bucket (unix ms). */
  ts: number;
};

/** `GET /api/v1/capabilities`. */
export type Capabilities = {
  /** The agent-sandbox API (`agents.x-k8s.io` `sandboxes`), needed by `agentSandbox` specs. */
  agentSandbox: Capability;
};

/** Whether an optional API is installed. */
export type Capability = {
  /** Installed and usable. */
  available: boolean;
  /** Why not, when not. */
  reason?: string | null;
};

/** `GET /api/v1/cluster`. */
export type ClusterInfo = {
  /** Namespaces. */
  namespaces: number;
  /** Nodes. */
  nodes: number;
  /** Pods in every namespace. */
  pods: number;
  /** Kubernetes version (`v1.33.1`). */
  version?: string | null;
};

/** `POST /api/v1/instances`. */
export type CreateInstanceRequest = {
  /** Kubernetes agent-sandbox settings. */
  agentSandbox?: Record<string, unknown> | null;
  /** A key to store in a new Secret `<name>-<provider>-key`. */
  apiKey?: string | null;
  /** OpenAI-compatible base URL. */
  baseURL?: string | null;
  /** Chat channels. */
  channels?: (Record<string, unknown>)[] | null;
  heartbeat?: null | HeartbeatRequest;
  /** Model name (required). */
  model?: string | null;
  /** Instance name (required). */
  name?: string | null;
  /** Node selector for agent pods. */
  nodeSelector?: Record<string, string> | null;
  /** SympoziumPolicy to apply. */
  policyRef?: string | null;
  /** Model provider, e.g. `openai`, `anthropic`, `ollama` (required). */
  provider?: string | null;
  /** Whole-run timeout, e.g. `30m`. */
  runTimeout?: string | null;
  /** Existing Secret with the provider key. */
  secretName?: string | null;
  /** Skills. */
  skills?: (Record<string, unknown>)[] | null;
};

/** `POST /api/v1/mcpservers`. */
export type CreateMcpServerRequest = {
  /** Image of a server run in the cluster. */
  image?: string | null;
  /** Name (required). */
  name?: string | null;
  /** Per-call timeout in seconds. */
  timeout?: number | null;
  /** Only these tools. */
  toolsAllow?: string[] | null;
  /** Never these tools. */
  toolsDeny?: string[] | null;
  /** Prefix of the server's tool names (required). */
  toolsPrefix?: string | null;
  /** `http` or `stdio` (required). */
  transportType?: string | null;
  /** URL of an external server. */
  url?: string | null;
};

/** `POST /api/v1/runs`. */
export type CreateRunRequest = {
  /** Agent id (default `primary`). */
  agentId?: string | null;
  /** The instance to run on (required). */
  instanceRef?: string | null;
  /** Model (default the instance's). */
  model?: string | null;
  /** Session key (default `session-<unix nanos>`). */
  sessionKey?: string | null;
  /** What the agent should do (required). */
  task?: string | null;
  /** Whole-run timeout, e.g. `5m` (default the instance's). */
  timeout?: string | null;
};

/** `POST /api/v1/schedules`. */
export type CreateScheduleRequest = {
  /** `Forbid`, `Allow` or `Replace`. */
  concurrencyPolicy?: string | null;
  /** Instance (required). */
  instanceRef?: string | null;
  /** Name (default generated `<instanceRef>-schedule-…`). */
  name?: string | null;
  /** Cron expression, e.g. `* /30 * * * *` (required). */
  schedule?: string | null;
  /** Paused. */
  suspend?: boolean | null;
  /** Task (required). */
  task?: string | null;
  /** `heartbeat`, `scheduled` or `sweep`. */
  type?: string | null;
};

/** The body of every error response. */
export type ErrorBody = {
  /** What went wrong, for a human. */
  error: string;
  /** The request field at fault (JSON path, e.g. `spec.task`), for bad input. */
  field?: string | null;
  /** Why the field was refused. */
  reason?: string | null;
};

/** One bucket of [`GatewayMetrics`]. */
export type GatewayBucket = {
  /** Their mean duration (s). */
  avgDurationSec: number;
  /** Of which failed. */
  errors: number;
  /** Requests (web-proxy runs) created in it. */
  requests: number;
  /** Start of the bucket (unix ms). */
  ts: number;
};

/** The gateway's settings and state. */
export type GatewayConfigResponse = {
  /** Its address. */
  address?: string | null;
  /** Domain under which instances get hostnames. */
  baseDomain?: string | null;
  /** cert-manager ClusterIssuer. */
  certManagerClusterIssuer?: string | null;
  /** A gateway is wanted. */
  enabled: boolean;
  /** GatewayClass. */
  gatewayClassName?: string | null;
  /** Its listeners. */
  listenerCount?: number | null;
  /** Message of its latest condition. */
  message?: string | null;
  /** Gateway object name. */
  name?: string | null;
  /** Phase reported by the controller. */
  phase?: string | null;
  /** The Gateway is programmed. */
  ready: boolean;
  /** TLS on. */
  tlsEnabled: boolean;
  /** TLS Secret. */
  tlsSecretName?: string | null;
};

/** `GET /api/v1/gateway/metrics`: web-endpoint traffic of the namespace. */
export type GatewayMetrics = {
  /** Mean duration of the finished ones (s). */
  avgDurationSec: number;
  /** Oldest first. */
  buckets: GatewayBucket[];
  /** Requests that failed. */
  errorCount: number;
  /** Instances of the namespace with a serving web endpoint. */
  servingInstances: number;
  /** Requests that did not fail. */
  successCount: number;
  /** Requests in the range. */
  totalRequests: number;
  /** Seconds since the oldest serving web endpoint of the namespace started (0 when none). */
  uptimeSec: number;
};

/** `POST`/`PATCH /api/v1/gateway`. */
export type GatewayRequest = {
  /** Base domain. */
  baseDomain?: string | null;
  /** cert-manager ClusterIssuer. */
  certManagerClusterIssuer?: string | null;
  /** A gateway is wanted. */
  enabled?: boolean | null;
  /** GatewayClass. */
  gatewayClassName?: string | null;
  /** Gateway object name. */
  name?: string | null;
  /** TLS on. */
  tlsEnabled?: boolean | null;
  /** TLS Secret. */
  tlsSecretName?: string | null;
};

/** Whether a token is set: `complete` or `idle`. */
export type GithubAuthStatus = {
  /** `complete` when a token is stored, else `idle`. */
  status: string;
};

/** `POST …/auth/token`. */
export type GithubTokenRequest = {
  /** A GitHub personal access token. */
  token?: string | null;
};

/** The heartbeat of [`CreateInstanceRequest`]. */
export type HeartbeatRequest = {
  /** 5-field cron expression, e.g. `0 * * * *` (required). */
  schedule?: string | null;
  /** What each heartbeat run does (required). */
  task?: string | null;
};

/** `POST /api/v1/personapacks/install-defaults`. */
export type InstallDefaultsResponse = {
  /** Packs that were there already. */
  alreadyPresent: string[];
  /** Packs copied. */
  copied: string[];
  /** Where the packs came from. */
  sourceNamespace: string;
  /** Where they were copied to. */
  targetNamespace: string;
};

/** `GET /api/v1/instances/{name}/memory`. */
export type InstanceMemory = {
  /** Memory is on in its spec. */
  enabled: boolean;
  /** The memories (newest first, or best match first with `q`). */
  entries: MemoryEntry[];
  /** The instance. */
  instance: string;
  /** Size limit of the store (KB), from the spec. */
  maxSizeKB?: number | null;
};

/** A labelled number. */
export type LabelValue = {
  /** Label. */
  label: string;
  /** Value. */
  value: number;
};

/** One memory. */
export type MemoryEntry = {
  /** The text. */
  content: string;
  /** When stored (RFC 3339). */
  created_at?: string;
  /** Its id on the memory server. */
  id: number;
  /** Tags. */
  tags?: string[];
  /** When last changed (RFC 3339). */
  updated_at?: string;
};

/** A live model list. */
export type ModelsResponse = {
  /** Model ids, sorted. */
  models: string[];
  /** Always `live`. */
  source: string;
};

/** One inference server found on a node. */
export type NodeProvider = {
  /** When the probe last saw it (RFC 3339). */
  lastProbe?: string | null;
  /** Models it serves. */
  models: string[];
  /** Provider name (`ollama`, `vllm`, …). */
  name: string;
  /** Port it listens on (on the node). */
  port: number;
  /** Port of the node probe's reverse proxy, when it runs one. */
  proxyPort?: number | null;
};

/** `GET /api/v1/observability/metrics`. */
export type ObservabilityMetrics = {
  /** Runs in the namespace. */
  agentRunsTotal: number;
  /** When this summary was made (RFC 3339). */
  collectedAt: string;
  /** Why it is not reachable. */
  collectorError?: string | null;
  /** Whether an OpenTelemetry collector answered (not probed yet: always false). */
  collectorReachable: boolean;
  /** Input tokens per model. */
  inputByModel: LabelValue[];
  /** Input tokens over all runs. */
  inputTokensTotal: number;
  /** Namespace summarised. */
  namespace: string;
  /** Output tokens per model. */
  outputByModel: LabelValue[];
  /** Output tokens over all runs. */
  outputTokensTotal: number;
  /** Metric names the collector would export. */
  rawMetricNames: string[];
  /** Lower-case phase → runs. */
  runStatus: Record<string, number>;
  /** Tool calls over all runs. */
  toolInvocations: number;
  /** Tool calls (one label, `tool_calls`). */
  toolsByName: LabelValue[];
};

/** `PATCH /api/v1/instances/{name}`. */
export type PatchInstanceRequest = {
  /** Replaces the agent's lifecycle hooks. */
  lifecycle?: Record<string, unknown> | null;
  webEndpoint?: null | WebEndpointPatch;
};

/** `PATCH /api/v1/mcpservers/{name}`. */
export type PatchMcpServerRequest = {
  /** Timeout in seconds. */
  timeout?: number | null;
  /** Only these tools. */
  toolsAllow?: string[] | null;
  /** Never these tools. */
  toolsDeny?: string[] | null;
  /** Tool name prefix. */
  toolsPrefix?: string | null;
  /** `http` or `stdio`. */
  transportType?: string | null;
  /** URL. */
  url?: string | null;
};

/** `PATCH /api/v1/personapacks/{name}`: activation and settings. */
export type PatchPersonaPackRequest = {
  /** Agent-sandbox settings. */
  agentSandbox?: Record<string, unknown> | null;
  /** A key to store in a new Secret `<pack>-<provider>-key`. */
  apiKey?: string | null;
  /** Base URL for every persona. */
  baseURL?: string | null;
  /** Channel type → access control (replaced). */
  channelAccessControl?: Record<string, unknown> | null;
  /** Channel type → Secret. */
  channelConfigs?: Record<string, string> | null;
  /** Channel types for every persona. */
  channels?: string[] | null;
  /** Stamp the team out (true) or tear it down (false). */
  enabled?: boolean | null;
  /** Heartbeat interval (e.g. `1h`) for every persona with a schedule. */
  heartbeatInterval?: string | null;
  /** Model for every persona. */
  model?: string | null;
  /** Per-persona edits. */
  personas?: PersonaPatch[] | null;
  /** Policy for every generated instance. */
  policyRef?: string | null;
  /** Model provider. */
  provider?: string | null;
  /** Existing Secret with the provider key. */
  secretName?: string | null;
  /** SkillPack → parameters, merged. */
  skillParams?: Record<string, Record<string, string>> | null;
};

/** One persona's edit. */
export type PersonaPatch = {
  /** The persona. */
  name: string;
  /** New skills. */
  skills?: string[] | null;
  /** New system prompt. */
  systemPrompt?: string | null;
};

/** `GET /api/v1/pods/{name}/logs`. */
export type PodLogs = {
  /** The last 200 lines. */
  logs: string;
};

/** A pod, summarised. */
export type PodSummary = {
  /** Instance it belongs to (label `sympozium.ai/instance`). */
  instanceRef?: string | null;
  /** Its labels. */
  labels: Record<string, string>;
  /** Name. */
  name: string;
  /** Namespace. */
  namespace: string;
  /** Node it runs on. */
  nodeName?: string | null;
  /** Phase (`Pending`, `Running`, …). */
  phase: string;
  /** Its IP. */
  podIP?: string | null;
  /** Restarts over all its containers. */
  restartCount: number;
  /** When it started (RFC 3339). */
  startTime?: string | null;
};

/** A node with healthy inference servers. */
export type ProviderNode = {
  /** Its labels. */
  labels: Record<string, string>;
  /** Its InternalIP. */
  nodeIP: string;
  /** Node name. */
  nodeName: string;
  /** Inference servers on it. */
  providers: NodeProvider[];
};

/** Rate limit of [`WebEndpointPatch`]. */
export type RateLimitPatch = {
  /** Requests per minute. */
  requestsPerMinute?: number | null;
};

/** `GET /api/v1/runs/{name}/telemetry`. */
export type RunTelemetry = {
  /** Events (none are collected yet). */
  events: (Record<string, unknown>)[];
  /** Its namespace. */
  namespace: string;
  /** Its phase. */
  phase: string;
  /** Its pod, once it has one. */
  podName: string;
  /** The run. */
  runName: string;
  /** Trace ids (none are collected yet). */
  traceIds: string[];
};

/** `GET /api/v1/observability/timeseries`: runs and tokens over time. */
export type TimeSeries = {
  /** Bucket width in seconds. */
  bucketSeconds: number;
  /** Oldest first. */
  buckets: Bucket[];
  /** The range asked for. */
  range: string;
};

/** The web endpoint part of [`PatchInstanceRequest`]. */
export type WebEndpointPatch = {
  /** `false` removes the skill; anything else adds it. */
  enabled?: boolean | null;
  /** Hostname of the endpoint. */
  hostname?: string | null;
  rateLimit?: null | RateLimitPatch;
};

/** `GET /api/v1/instances/{name}/web-endpoint`. */
export type WebEndpointStatusResponse = {
  /** Secret holding the endpoint's API key. */
  authSecretName?: string | null;
  /** Deployment of the serving run. */
  deploymentName?: string | null;
  /** The instance has the web-endpoint skill. */
  enabled: boolean;
  /** The cluster's gateway is ready. */
  gatewayReady: boolean;
  /** The public URL, when the instance has a route. */
  routeURL?: string | null;
  /** Service of the serving run. */
  serviceName?: string | null;
};
