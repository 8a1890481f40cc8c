/**
 * GitHub's GraphQL schema inside the Worker, built once per isolate on first use (parsing
 * and building it costs a few hundred milliseconds of CPU, so nothing pays for it until a
 * GraphQL request arrives), and the classification of its types the policy walks with.
 */
import { buildASTSchema, getNamedType, isObjectType, isAbstractType, parse, type GraphQLNamedType, type GraphQLObjectType, type GraphQLSchema } from "graphql";
import { GITHUB_SDL } from "./github-schema";
import { ACTOR_TYPES } from "./graphql-reach";

/**
 * How an object relates to a repository:
 * - `actor`: a person or account (always outside);
 * - `repository`: a repository;
 * - `owned`: belongs to one repository (has `repository: Repository`);
 * - `entity`: any other object with a global id (an event, a project, a card);
 * - `value`: an object without identity (page info, a reaction group, a git actor): it is
 *   part of whatever holds it.
 */
export type TypeCategory = "actor" | "repository" | "owned" | "entity" | "value";

export interface GitHubSchema {
  schema: GraphQLSchema;
  category(type: GraphQLObjectType): TypeCategory;
  /** The object types a composite type may be at run time. */
  concrete(type: GraphQLNamedType): readonly GraphQLObjectType[];
}

let built: GitHubSchema | undefined;

/** The schema and its classification, built on first call, then cached for the isolate. */
export function githubSchema(): GitHubSchema {
  built ??= build();
  return built;
}

function build(): GitHubSchema {
  // The SDL is generated from GitHub's published schema and checked by a test: skip re-validating it.
  const schema = buildASTSchema(parse(GITHUB_SDL, { noLocation: true }), { assumeValidSDL: true, assumeValid: true });
  const categories = new Map<string, TypeCategory>();
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith("__")) continue;
    // A root reached again (`relay`) could start anywhere: treat it like an account.
    const root = type === schema.getQueryType() || type === schema.getMutationType();
    categories.set(type.name, root ? "actor" : classify(type));
  }
  const concrete = new Map<string, readonly GraphQLObjectType[]>();
  return {
    schema,
    category: (type) => categories.get(type.name) ?? "entity",
    concrete(type) {
      let list = concrete.get(type.name);
      if (!list) {
        list = isObjectType(type) ? [type] : isAbstractType(type) ? schema.getPossibleTypes(type) : [];
        concrete.set(type.name, list);
      }
      return list;
    },
  };
}

function classify(type: GraphQLObjectType): TypeCategory {
  if (ACTOR_TYPES.has(type.name)) return "actor";
  if (type.name === "Repository") return "repository";
  const fields = type.getFields();
  const repository = fields["repository"];
  if (repository && getNamedType(repository.type).name === "Repository" && !type.name.endsWith("Payload")) return "owned";
  if (type.getInterfaces().some((i) => i.name === "Node") || fields["id"]) return "entity";
  return "value";
}
