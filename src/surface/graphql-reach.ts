/**
 * What the GraphQL policy knows about GitHub's object graph: which types are people and
 * accounts, which belong to a repository, which field edges stay inside the repository they
 * start from, and what may be read of an object outside it. Pure tables; the walk that uses
 * them is in graphql-policy.ts.
 */

/** Fields anything may show, inside or outside the bound repository: who or what it is. */
export const IDENTITY_FIELDS: ReadonlySet<string> = new Set(["id", "login", "name", "nameWithOwner", "url", "databaseId", "__typename"]);

/**
 * Identity of a few types whose name is not called `name`, and the summary of another
 * repository that `gh pr create` reads of a fork's parent (its `RepositoryInfo` query
 * selects `parent { description hasIssuesEnabled hasWikiEnabled viewerPermission
 * defaultBranchRef { name } owner { login } }`): without it `gh pr create` fails in every
 * repository. Kept to exactly that.
 */
export const OUTSIDE_EXTRA_FIELDS: Readonly<Record<string, ReadonlySet<string>>> = {
  Team: new Set(["slug"]),
  ProjectV2: new Set(["title", "number"]),
  Repository: new Set(["description", "hasIssuesEnabled", "hasWikiEnabled", "viewerPermission"]),
};

/** Object edges that may be followed from an object outside the bound repository (to its identity). */
export const OUTSIDE_EDGES: ReadonlySet<string> = new Set(["Repository.owner", "Repository.defaultBranchRef", "Team.organization"]);

/** People and accounts: always outside, whatever leads to them. Abstract types that can be one of them count too. */
export const ACTOR_TYPES: ReadonlySet<string> = new Set(["User", "Organization", "Bot", "Mannequin", "Team", "Enterprise", "EnterpriseUserAccount", "App"]);

/**
 * Edges that stay inside: from an object inside the bound repository to an object of the
 * same repository. `X.repository` of an object inside is the bound repository itself and is
 * added by the walk. A connection counts by the field that returns it. Everything not listed
 * (another repository: `parent`, `forks`, `headRepository`, `templateRepository`; references
 * that may cross repositories: `associatedPullRequests`, `closingIssuesReferences`,
 * `trackedInIssues`, a timeline event's `source`/`subject`; projects) leads outside.
 */
export const CONTAINMENT_EDGES: ReadonlySet<string> = new Set(
  [
    "Repository: branchProtectionRules commitComments defaultBranchRef deployments discussion discussionCategories discussionCategory discussions environment environments issue issueOrPullRequest issueTemplates issues label labels latestRelease milestone milestones object pinnedDiscussions pinnedEnvironments pinnedIssues pullRequest pullRequestTemplates pullRequests ref refs release releases vulnerabilityAlert vulnerabilityAlerts dependencyGraphManifests mergeQueue codeowners contactLinks",
    "PullRequest: baseRef comments commits files labels latestOpinionatedReviews latestReviews mergeCommit milestone potentialMergeCommit reviewRequests reviewThreads reviews statusCheckRollup timelineItems timeline viewerLatestReview viewerLatestReviewRequest autoMergeRequest projectCards projectItems mergeQueueEntry userContentEdits reactions",
    "Issue: comments labels milestone projectCards projectItems timelineItems timeline userContentEdits reactions",
    "IssueComment: issue pullRequest userContentEdits reactions",
    "PullRequestReview: comments commit pullRequest userContentEdits reactions",
    "PullRequestReviewComment: commit originalCommit pullRequest pullRequestReview replyTo userContentEdits reactions",
    "PullRequestReviewThread: comments pullRequest",
    "PullRequestCommit: commit pullRequest",
    "PullRequestChangedFile:",
    "ReviewRequest: pullRequest",
    "AutoMergeRequest: pullRequest",
    "Commit: blame checkSuites comments deployments file history parents status statusCheckRollup submodules tree",
    "Blame: ranges",
    "BlameRange: commit",
    "Tree: entries",
    "TreeEntry: object",
    "Tag: target",
    "Ref: target branchProtectionRule",
    "StatusCheckRollup: commit contexts",
    "Status: commit contexts combinedContexts",
    "StatusContext: commit",
    "CheckRun: annotations checkSuite deployment steps",
    "CheckSuite: checkRuns commit workflowRun",
    "WorkflowRun: checkSuite deploymentReviews pendingDeploymentRequests workflow",
    "Deployment: commit latestStatus statuses",
    "DeploymentStatus: deployment",
    "Release: releaseAssets tag tagCommit reactions",
    "ReleaseAsset: release",
    "Milestone: issues pullRequests",
    "Label: issues pullRequests",
    "CommitComment: commit userContentEdits reactions",
    "Discussion: answer category comments labels poll userContentEdits reactions",
    "DiscussionComment: discussion replies replyTo userContentEdits reactions",
    "DiscussionPoll: discussion options",
    "ProjectCard: content",
    "ProjectV2Item: content",
    "MergeQueue: entries",
    "MergeQueueEntry: baseCommit headCommit pullRequest",
  ].flatMap((line) => {
    const [type, fields] = line.split(":") as [string, string];
    return fields.trim() === "" ? [] : fields.trim().split(/\s+/).map((f) => `${type}.${f}`);
  }),
);
