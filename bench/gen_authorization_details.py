#!/usr/bin/env python3
"""Writes a realistic `aws iam get-account-authorization-details` document for the IAM
benchmark (posture scan --aws versus cloudsplaining).

Usage:
  gen_authorization_details.py OUT.json [--roles 5000] [--policies 10000]
      [--users 400] [--groups 120] [--seed 20261204] [--truth TRUTH.json]
      [--encoded-share 0.5]

The account looks like a large estate: mostly least-privilege service roles (Lambda,
ECS tasks, EC2, Glue, Step Functions) with resource-scoped customer managed policies,
AWS managed policies where teams use them (AWSLambdaBasicExecutionRole,
AmazonECSTaskExecutionRolePolicy, AmazonSSMManagedInstanceCore, ReadOnlyAccess, ...),
people in groups, and then the things an audit finds: administrators
(AdministratorAccess, inline *:*), PowerUserAccess, IAMFullAccess, the Rhino Security
Labs escalation methods (iam:CreatePolicyVersion, iam:PassRole with ec2:RunInstances,
Lambda, Glue, CloudFormation, Data Pipeline, AttachUserPolicy, PutRolePolicy,
CreateAccessKey, UpdateAssumeRolePolicy, ...), wildcards (iam:*, iam:Put*, iam:Attach*),
NotAction, conditions, resource scoping, Deny statements (in the same policy, in
guardrail policies, conditional, NotAction), permissions boundaries, managed policies
with several versions, AWS service-linked roles.

Policy documents are URL-encoded (as the IAM API returns them) for a share of the
entries (--encoded-share, default half) and JSON objects (as the AWS CLI prints them)
for the others.

--truth writes {arn: archetype} for every principal: which case of the list above it
was generated as (the comparison helper groups differences by it).

Deterministic: the same arguments give the same bytes.
"""
import argparse
import json
import random
import string
import urllib.parse

ACCOUNT = "123456789012"
PARTNER = "210987654321"  # the CI/CD account that deploys into this one
V = "2012-10-17"

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("out")
p.add_argument("--roles", type=int, default=5000)
p.add_argument("--policies", type=int, default=10000)
p.add_argument("--users", type=int, default=400)
p.add_argument("--groups", type=int, default=120)
p.add_argument("--seed", type=int, default=20261204)
p.add_argument("--truth")
p.add_argument("--encoded-share", type=float, default=0.5)
args = p.parse_args()
rng = random.Random(args.seed)


def ident(prefix):
    return prefix + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(17))


def date():
    return "20%02d-%02d-%02dT%02d:%02d:%02d+00:00" % (
        rng.randint(17, 25), rng.randint(1, 12), rng.randint(1, 28),
        rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))


def encode(doc):
    """A document as the API returns it (URL-encoded JSON) or as the CLI prints it."""
    if rng.random() < args.encoded_share:
        return urllib.parse.quote(json.dumps(doc), safe="")
    return doc


def stmt(effect, actions, resources="*", sid=None, condition=None, not_action=False, not_resource=False):
    s = {}
    if sid:
        s["Sid"] = sid
    s["Effect"] = effect
    s["NotAction" if not_action else "Action"] = actions
    s["NotResource" if not_resource else "Resource"] = resources
    if condition:
        s["Condition"] = condition
    return s


def doc(*statements):
    return {"Version": V, "Statement": list(statements)}


def arn(kind, name, path="/"):
    return f"arn:aws:iam::{ACCOUNT}:{kind}{path}{name}"


# ---------------------------------------------------------------------------------------
# Names
TEAMS = ["payments", "checkout", "search", "catalog", "identity", "billing", "ledger",
         "ml", "data", "analytics", "growth", "notify", "media", "fraud", "risk", "ops",
         "platform", "sre", "security", "mobile", "web", "partner", "support", "infra"]
SERVICES = ["api", "worker", "consumer", "ingest", "export", "indexer", "scheduler",
            "resizer", "notifier", "reconciler", "gateway", "sync", "etl", "reporter",
            "crawler", "loader", "auth", "webhook", "batch", "stream"]
ENVS = ["prod", "staging", "dev", "qa", "sandbox"]
REGIONS = ["eu-west-1", "us-east-1", "eu-central-1", "us-west-2"]
FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
         "judy", "mallory", "nia", "oscar", "peggy", "rupert", "sybil", "trent", "victor",
         "walter", "yara", "zoe", "amir", "bea", "chen", "dara", "emre", "fatma", "goran",
         "hana", "ines", "jon", "kemal", "lena", "mehdi", "noor", "olga", "priya", "quinn"]
LAST = ["smith", "garcia", "muller", "rossi", "kowalski", "nguyen", "tanaka", "silva",
        "novak", "jensen", "dubois", "ivanova", "kim", "patel", "okafor", "berg", "costa"]

# ---------------------------------------------------------------------------------------
# Policies
policies = {}        # arn -> entry (without AttachmentCount until the end)
attach_count = {}    # arn -> n
boundary_count = {}  # arn -> n


def add_policy(name, versions, path="/", aws=False, description=None, default=None):
    """versions: list of documents, oldest first; the last is the default unless
    `default` (an index) says otherwise."""
    parn = f"arn:aws:iam::aws:policy{path}{name}" if aws else arn("policy", name, path)
    assert parn not in policies, parn
    default = len(versions) - 1 if default is None else default
    created = date()
    pv = []
    for i, d in enumerate(versions):
        pv.append({"Document": encode(d), "VersionId": f"v{i + 1}",
                   "IsDefaultVersion": i == default, "CreateDate": created})
    # The API lists the newest version first.
    pv.reverse()
    policies[parn] = {
        "PolicyName": name,
        "PolicyId": ident("ANPA"),
        "Arn": parn,
        "Path": path,
        "DefaultVersionId": f"v{default + 1}",
        "IsAttachable": True,
        "CreateDate": created,
        "UpdateDate": created,
        "PolicyVersionList": pv,
    }
    if description:
        policies[parn]["Description"] = description
    attach_count.setdefault(parn, 0)
    return parn


def attached(parn):
    attach_count[parn] += 1
    return {"PolicyName": policies[parn]["PolicyName"], "PolicyArn": parn}


# --- AWS managed policies (documents as AWS publishes them, shortened where long) ------
READ_SERVICES = ["acm", "apigateway", "application-autoscaling", "athena", "autoscaling",
                 "backup", "cloudformation", "cloudfront", "cloudtrail", "cloudwatch",
                 "codebuild", "codecommit", "codepipeline", "config", "dynamodb", "ec2",
                 "ecr", "ecs", "eks", "elasticache", "elasticloadbalancing", "es", "events",
                 "firehose", "glue", "guardduty", "iam", "kinesis", "kms", "lambda", "logs",
                 "rds", "redshift", "route53", "s3", "sagemaker", "secretsmanager", "sns",
                 "sqs", "ssm", "states", "sts", "tag", "waf", "xray"]
AWS = {}
AWS["AdministratorAccess"] = add_policy(
    "AdministratorAccess", [doc(stmt("Allow", "*", "*"))], aws=True,
    description="Provides full access to AWS services and resources.")
AWS["PowerUserAccess"] = add_policy("PowerUserAccess", [
    doc(stmt("Allow", ["iam:*", "organizations:*", "account:*"], "*", not_action=True)),
    doc(stmt("Allow", ["iam:*", "organizations:*", "account:*"], "*", not_action=True),
        stmt("Allow", ["account:GetAccountInformation", "account:GetPrimaryEmail",
                       "account:ListRegions", "iam:CreateServiceLinkedRole",
                       "iam:DeleteServiceLinkedRole", "iam:ListRoles",
                       "organizations:DescribeOrganization"], "*")),
], aws=True, description="Provides full access to AWS services and resources, but does not allow management of Users and groups.")
AWS["IAMFullAccess"] = add_policy("IAMFullAccess", [doc(stmt("Allow", [
    "iam:*", "organizations:DescribeAccount", "organizations:DescribeOrganization",
    "organizations:DescribeOrganizationalUnit", "organizations:DescribePolicy",
    "organizations:ListChildren", "organizations:ListParents",
    "organizations:ListPoliciesForTarget", "organizations:ListRoots",
    "organizations:ListPolicies", "organizations:ListTargetsForPolicy"], "*"))], aws=True)
AWS["IAMReadOnlyAccess"] = add_policy("IAMReadOnlyAccess", [doc(stmt("Allow", [
    "iam:GenerateCredentialReport", "iam:GenerateServiceLastAccessedDetails", "iam:Get*",
    "iam:List*", "iam:SimulateCustomPolicy", "iam:SimulatePrincipalPolicy"], "*"))], aws=True)
AWS["ReadOnlyAccess"] = add_policy("ReadOnlyAccess", [doc(stmt(
    "Allow", sorted(f"{s}:{v}*" for s in READ_SERVICES for v in ("Describe", "Get", "List")
                    if not (s == "s3" and v == "Describe")) + ["s3:GetObject"], "*",
    sid="ReadOnlyActions"))], aws=True)
AWS["ViewOnlyAccess"] = add_policy("ViewOnlyAccess", [doc(stmt("Allow", sorted(
    f"{s}:{v}*" for s in READ_SERVICES for v in ("Describe", "List")), "*"))],
    path="/job-function/", aws=True)
AWS["SecurityAudit"] = add_policy("SecurityAudit", [doc(stmt("Allow", [
    "access-analyzer:List*", "acm:Describe*", "cloudtrail:DescribeTrails",
    "cloudtrail:GetEventSelectors", "config:Describe*", "ec2:Describe*", "iam:Get*",
    "iam:List*", "iam:GenerateCredentialReport", "kms:Describe*", "kms:Get*", "kms:List*",
    "lambda:GetPolicy", "lambda:List*", "logs:Describe*", "s3:GetBucket*",
    "s3:ListAllMyBuckets", "sns:GetTopicAttributes", "sqs:GetQueueAttributes"], "*"))], aws=True)
AWS["AmazonS3ReadOnlyAccess"] = add_policy("AmazonS3ReadOnlyAccess", [doc(stmt("Allow", [
    "s3:Get*", "s3:List*", "s3:Describe*", "s3-object-lambda:Get*", "s3-object-lambda:List*"], "*"))], aws=True)
AWS["AmazonS3FullAccess"] = add_policy("AmazonS3FullAccess", [doc(stmt("Allow", [
    "s3:*", "s3-object-lambda:*"], "*"))], aws=True)
AWS["AmazonDynamoDBReadOnlyAccess"] = add_policy("AmazonDynamoDBReadOnlyAccess", [doc(stmt("Allow", [
    "application-autoscaling:DescribeScalableTargets", "cloudwatch:GetMetricData",
    "dynamodb:BatchGetItem", "dynamodb:Describe*", "dynamodb:List*", "dynamodb:GetItem",
    "dynamodb:Query", "dynamodb:Scan", "dynamodb:PartiQLSelect"], "*"))], aws=True)
AWS["CloudWatchReadOnlyAccess"] = add_policy("CloudWatchReadOnlyAccess", [doc(stmt("Allow", [
    "autoscaling:Describe*", "cloudwatch:Describe*", "cloudwatch:Get*", "cloudwatch:List*",
    "logs:Get*", "logs:List*", "logs:StartQuery", "logs:StopQuery", "logs:Describe*",
    "logs:TestMetricFilter", "logs:FilterLogEvents", "sns:Get*", "sns:List*"], "*"))], aws=True)
AWS["AWSLambdaBasicExecutionRole"] = add_policy("AWSLambdaBasicExecutionRole", [doc(stmt("Allow", [
    "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "*"))],
    path="/service-role/", aws=True)
AWS["AWSLambdaVPCAccessExecutionRole"] = add_policy("AWSLambdaVPCAccessExecutionRole", [doc(stmt("Allow", [
    "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
    "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses"], "*"))], path="/service-role/", aws=True)
AWS["AmazonECSTaskExecutionRolePolicy"] = add_policy("AmazonECSTaskExecutionRolePolicy", [doc(stmt("Allow", [
    "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage", "logs:CreateLogStream",
    "logs:PutLogEvents"], "*"))], path="/service-role/", aws=True)
AWS["AmazonSSMManagedInstanceCore"] = add_policy("AmazonSSMManagedInstanceCore", [doc(
    stmt("Allow", ["ssm:DescribeAssociation", "ssm:GetDeployablePatchSnapshotForInstance",
                   "ssm:GetDocument", "ssm:DescribeDocument", "ssm:GetManifest",
                   "ssm:GetParameter", "ssm:GetParameters", "ssm:ListAssociations",
                   "ssm:ListInstanceAssociations", "ssm:PutInventory",
                   "ssm:PutComplianceItems", "ssm:PutConfigurePackageResult",
                   "ssm:UpdateAssociationStatus", "ssm:UpdateInstanceAssociationStatus",
                   "ssm:UpdateInstanceInformation"], "*"),
    stmt("Allow", ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                   "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"], "*"),
    stmt("Allow", ["ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage",
                   "ec2messages:FailMessage", "ec2messages:GetEndpoint",
                   "ec2messages:GetMessages", "ec2messages:SendReply"], "*"))], aws=True)
AWS["CloudWatchAgentServerPolicy"] = add_policy("CloudWatchAgentServerPolicy", [doc(
    stmt("Allow", ["cloudwatch:PutMetricData", "ec2:DescribeVolumes", "ec2:DescribeTags",
                   "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:DescribeLogGroups",
                   "logs:CreateLogStream", "logs:CreateLogGroup", "logs:PutRetentionPolicy"], "*"),
    stmt("Allow", "ssm:GetParameter", "arn:aws:ssm:*:*:parameter/AmazonCloudWatch-*"))], aws=True)
AWS["AmazonEC2ContainerRegistryReadOnly"] = add_policy("AmazonEC2ContainerRegistryReadOnly", [doc(stmt("Allow", [
    "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
    "ecr:GetRepositoryPolicy", "ecr:DescribeRepositories", "ecr:ListImages",
    "ecr:DescribeImages", "ecr:BatchGetImage", "ecr:GetLifecyclePolicy",
    "ecr:GetLifecyclePolicyPreview", "ecr:ListTagsForResource",
    "ecr:DescribeImageScanFindings"], "*"))], aws=True)
AWS["AmazonEKSWorkerNodePolicy"] = add_policy("AmazonEKSWorkerNodePolicy", [doc(stmt("Allow", [
    "ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVolumes",
    "ec2:DescribeVolumesModifications", "ec2:DescribeVpcs", "eks:DescribeCluster",
    "eks-auth:AssumeRoleForPodIdentity"], "*", sid="WorkerNodePermissions"))], aws=True)
# AWS managed policies that hand out escalation on their own.
AWS["AmazonEC2FullAccess"] = add_policy("AmazonEC2FullAccess", [doc(
    stmt("Allow", "ec2:*", "*"),
    stmt("Allow", "elasticloadbalancing:*", "*"),
    stmt("Allow", "cloudwatch:*", "*"),
    stmt("Allow", "autoscaling:*", "*"),
    stmt("Allow", "iam:CreateServiceLinkedRole", "*", condition={"StringEquals": {
        "iam:AWSServiceName": ["autoscaling.amazonaws.com", "ec2scheduled.amazonaws.com",
                               "elasticloadbalancing.amazonaws.com", "spot.amazonaws.com",
                               "spotfleet.amazonaws.com", "transitgateway.amazonaws.com"]}}))], aws=True)
AWS["AWSLambda_FullAccess"] = add_policy("AWSLambda_FullAccess", [doc(
    stmt("Allow", ["cloudformation:DescribeStacks", "cloudformation:ListStackResources",
                   "cloudwatch:ListMetrics", "cloudwatch:GetMetricData", "ec2:DescribeSecurityGroups",
                   "ec2:DescribeSubnets", "ec2:DescribeVpcs", "kms:ListAliases",
                   "iam:GetPolicy", "iam:GetPolicyVersion", "iam:GetRole", "iam:GetRolePolicy",
                   "iam:ListAttachedRolePolicies", "iam:ListRolePolicies", "iam:ListRoles",
                   "lambda:*", "logs:DescribeLogGroups", "states:DescribeStateMachine",
                   "states:ListStateMachines", "tag:GetResources", "xray:GetTraceSummaries",
                   "xray:BatchGetTraces"], "*"),
    stmt("Allow", "iam:PassRole", "*", condition={"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}),
    stmt("Allow", ["logs:DescribeLogStreams", "logs:GetLogEvents", "logs:FilterLogEvents"],
         "arn:aws:logs:*:*:log-group:/aws/lambda/*"))], aws=True)
AWS["AWSGlueServiceRole"] = add_policy("AWSGlueServiceRole", [doc(
    stmt("Allow", ["glue:*", "s3:GetBucketLocation", "s3:ListBucket", "s3:ListAllMyBuckets",
                   "s3:GetBucketAcl", "ec2:DescribeVpcEndpoints", "ec2:DescribeRouteTables",
                   "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
                   "ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups",
                   "ec2:DescribeSubnets", "ec2:DescribeVpcAttribute", "iam:ListRolePolicies",
                   "iam:GetRole", "iam:GetRolePolicy", "cloudwatch:PutMetricData"], "*"),
    stmt("Allow", ["s3:CreateBucket"], "arn:aws:s3:::aws-glue-*"),
    stmt("Allow", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         ["arn:aws:s3:::aws-glue-*/*", "arn:aws:s3:::*/*aws-glue-*/*"]),
    stmt("Allow", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "arn:aws:logs:*:*:*:/aws-glue/*"))], path="/service-role/", aws=True)
AWS["AWSCloudFormationFullAccess"] = add_policy("AWSCloudFormationFullAccess", [doc(
    stmt("Allow", ["cloudformation:*"], "*"))], aws=True)
AWS["AmazonSSMFullAccess"] = add_policy("AmazonSSMFullAccess", [doc(
    stmt("Allow", ["cloudwatch:PutMetricData", "ds:CreateComputer", "ds:DescribeDirectories",
                   "ec2:DescribeInstanceStatus", "logs:*", "ssm:*", "ec2messages:*"], "*"),
    stmt("Allow", "iam:CreateServiceLinkedRole",
         "arn:aws:iam::*:role/aws-service-role/ssm.amazonaws.com/AWSServiceRoleForAmazonSSM*",
         condition={"StringLike": {"iam:AWSServiceName": "ssm.amazonaws.com"}}),
    stmt("Allow", ["iam:DeleteServiceLinkedRole", "iam:GetServiceLinkedRoleDeletionStatus"],
         "arn:aws:iam::*:role/aws-service-role/ssm.amazonaws.com/AWSServiceRoleForAmazonSSM*"),
    stmt("Allow", ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                   "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"], "*"))], aws=True)
# Service-linked role policies (path /aws-service-role/).
SLR = {}
SLR["AutoScalingServiceRolePolicy"] = add_policy("AutoScalingServiceRolePolicy", [doc(
    stmt("Allow", ["ec2:AttachClassicLinkVpc", "ec2:CancelSpotInstanceRequests",
                   "ec2:CreateFleet", "ec2:CreateTags", "ec2:DeleteTags", "ec2:Describe*",
                   "ec2:DetachClassicLinkVpc", "ec2:ModifyInstanceAttribute",
                   "ec2:RequestSpotInstances", "ec2:RunInstances", "ec2:StartInstances",
                   "ec2:StopInstances", "ec2:TerminateInstances"], "*", sid="EC2InstanceManagement"),
    stmt("Allow", "iam:PassRole", "*", sid="EC2InstanceProfileManagement",
         condition={"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}}),
    stmt("Allow", "iam:CreateServiceLinkedRole", "*", sid="EC2SpotManagement",
         condition={"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}}),
    stmt("Allow", ["elasticloadbalancing:Register*", "elasticloadbalancing:Deregister*",
                   "elasticloadbalancing:Describe*"], "*", sid="ELBManagement"),
    stmt("Allow", ["cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms",
                   "cloudwatch:GetMetricData", "cloudwatch:PutMetricAlarm"], "*", sid="CWManagement"),
    stmt("Allow", ["sns:Publish"], "*", sid="SNSManagement"))], path="/aws-service-role/", aws=True)
SLR["AmazonECSServiceRolePolicy"] = add_policy("AmazonECSServiceRolePolicy", [doc(
    stmt("Allow", ["ec2:AttachNetworkInterface", "ec2:CreateNetworkInterface",
                   "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
                   "ec2:DeleteNetworkInterfacePermission", "ec2:Describe*",
                   "ec2:DetachNetworkInterface", "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
                   "elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:Describe*",
                   "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
                   "elasticloadbalancing:RegisterTargets", "route53:ChangeResourceRecordSets",
                   "route53:CreateHealthCheck", "route53:DeleteHealthCheck",
                   "route53:Get*", "route53:List*", "servicediscovery:*"], "*", sid="ECSTaskManagement"),
    stmt("Allow", ["logs:CreateLogGroup", "logs:DescribeLogGroups", "logs:PutRetentionPolicy"],
         "arn:aws:logs:*:*:log-group:/aws/ecs/*", sid="ECSLogs"))], path="/aws-service-role/", aws=True)
SLR["AmazonRDSServiceRolePolicy"] = add_policy("AmazonRDSServiceRolePolicy", [doc(
    stmt("Allow", ["ec2:AllocateAddress", "ec2:AssociateAddress", "ec2:AuthorizeSecurityGroupIngress",
                   "ec2:CreateNetworkInterface", "ec2:CreateSecurityGroup", "ec2:DeleteNetworkInterface",
                   "ec2:DeleteSecurityGroup", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
                   "ec2:DescribeInternetGateways", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets",
                   "ec2:DescribeVpcAttribute", "ec2:DescribeVpcs", "ec2:DisassociateAddress",
                   "ec2:ModifyNetworkInterfaceAttribute", "ec2:ModifyVpcEndpoint",
                   "ec2:ReleaseAddress", "ec2:RevokeSecurityGroupIngress"], "*"),
    stmt("Allow", ["logs:CreateLogGroup"], "arn:aws:logs:*:*:log-group:/aws/rds/*"))],
    path="/aws-service-role/", aws=True)
SLR["AWSSupportServiceRolePolicy"] = add_policy("AWSSupportServiceRolePolicy", [doc(
    stmt("Allow", ["acm:DescribeCertificate", "cloudtrail:DescribeTrails", "ec2:Describe*",
                   "iam:GetAccountSummary", "iam:ListRoles", "rds:Describe*", "s3:GetBucketPolicy",
                   "s3:ListAllMyBuckets"], "*", sid="AWSSupportAPIGetAndDescribe"))],
    path="/aws-service-role/", aws=True)

# --- Shared customer managed policies ---------------------------------------------------
SHARED = {}
SHARED["DenyIAMChanges"] = add_policy("guardrail-deny-iam-changes", [doc(
    stmt("Deny", ["iam:Create*", "iam:Delete*", "iam:Put*", "iam:Attach*", "iam:Detach*",
                  "iam:Update*", "iam:PassRole", "iam:SetDefaultPolicyVersion",
                  "iam:AddUserToGroup"], "*", sid="NoIdentityChanges"))],
    path="/guardrails/", description="Workload roles never change IAM")
SHARED["DenyOutsideAllowed"] = add_policy("guardrail-allowed-services", [doc(
    stmt("Deny", ["s3:*", "dynamodb:*", "sqs:*", "sns:*", "logs:*", "kms:Decrypt",
                  "kms:GenerateDataKey", "cloudwatch:PutMetricData", "xray:Put*",
                  "secretsmanager:GetSecretValue", "ssm:GetParameter*"], "*",
         sid="OnlyDataPlaneServices", not_action=True))], path="/guardrails/")
SHARED["DenyRegions"] = add_policy("guardrail-deny-other-regions", [doc(
    stmt("Deny", ["iam:*", "sts:*", "organizations:*", "support:*", "cloudfront:*", "route53:*"], "*",
         sid="DenyOutsideHomeRegions", not_action=True,
         condition={"StringNotEquals": {"aws:RequestedRegion": ["eu-west-1", "eu-central-1"]}}))],
    path="/guardrails/")
SHARED["ForceMFA"] = add_policy("force-mfa", [doc(
    stmt("Allow", ["iam:ListVirtualMFADevices", "iam:ListUsers"], "*", sid="AllowListActions"),
    stmt("Allow", ["iam:CreateVirtualMFADevice", "iam:EnableMFADevice", "iam:ListMFADevices",
                   "iam:ResyncMFADevice", "iam:ChangePassword", "iam:GetUser"],
         [f"arn:aws:iam::{ACCOUNT}:mfa/${{aws:username}}", f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}"],
         sid="AllowManageOwnMFA"),
    stmt("Deny", ["iam:CreateVirtualMFADevice", "iam:EnableMFADevice", "iam:GetUser",
                  "iam:ListMFADevices", "iam:ListVirtualMFADevices", "iam:ResyncMFADevice",
                  "iam:ChangePassword", "sts:GetSessionToken"], "*", sid="DenyAllExceptListedIfNoMFA",
         not_action=True, condition={"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}))],
    description="Everything needs MFA")
SHARED["SelfService"] = add_policy("self-service-credentials", [doc(
    stmt("Allow", ["iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:ListAccessKeys",
                   "iam:UpdateAccessKey", "iam:GetAccessKeyLastUsed", "iam:UploadSSHPublicKey",
                   "iam:ListSSHPublicKeys", "iam:ChangePassword", "iam:GetLoginProfile",
                   "iam:UpdateLoginProfile"],
         f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}", sid="OwnCredentials"),
    stmt("Allow", "iam:GetAccountPasswordPolicy", "*"))])
BOUNDARIES = []
for name, actions in [
        ("boundary-workloads", ["s3:*", "dynamodb:*", "sqs:*", "sns:*", "logs:*", "kms:Decrypt",
                                "kms:GenerateDataKey", "cloudwatch:PutMetricData", "xray:*",
                                "secretsmanager:GetSecretValue", "ssm:GetParameter*"]),
        ("boundary-data-team", ["s3:*", "athena:*", "glue:Get*", "glue:BatchGet*", "logs:*",
                                "kms:Decrypt"]),
        ("boundary-developers", ["s3:*", "dynamodb:*", "lambda:Get*", "lambda:List*", "logs:*",
                                 "cloudwatch:*", "ec2:Describe*", "ecs:Describe*", "ecs:List*"])]:
    BOUNDARIES.append(add_policy(name, [doc(stmt("Allow", actions, "*", sid="Ceiling"),
                                            stmt("Deny", ["iam:*", "organizations:*"], "*", sid="NoIdentity"))],
                                 path="/boundaries/"))


# --- Least-privilege building blocks -----------------------------------------------------
def lp_statements(app, env, region):
    """Two to four resource-scoped statements for one application."""
    bucket = f"{app}-{env}-{rng.randint(1000, 9999)}"
    table = f"{app}-{env}"
    queue = f"{app}-{env}-{rng.choice(['jobs', 'events', 'dlq', 'inbox'])}"
    options = [
        stmt("Allow", ["s3:GetObject", "s3:PutObject"], f"arn:aws:s3:::{bucket}/*", sid="Objects"),
        stmt("Allow", ["s3:ListBucket"], f"arn:aws:s3:::{bucket}", sid="Bucket"),
        stmt("Allow", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
             [f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}",
              f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}/index/*"], sid="Table"),
        stmt("Allow", ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
             f"arn:aws:sqs:{region}:{ACCOUNT}:{queue}", sid="Queue"),
        stmt("Allow", "sns:Publish", f"arn:aws:sns:{region}:{ACCOUNT}:{app}-{env}-events"),
        stmt("Allow", ["kms:Decrypt", "kms:GenerateDataKey"],
             f"arn:aws:kms:{region}:{ACCOUNT}:key/{rng.getrandbits(128):032x}"),
        stmt("Allow", "secretsmanager:GetSecretValue",
             f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{app}/{env}/*"),
        stmt("Allow", ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
             f"arn:aws:ssm:{region}:{ACCOUNT}:parameter/{app}/{env}/*"),
        stmt("Allow", ["states:StartExecution"], f"arn:aws:states:{region}:{ACCOUNT}:stateMachine:{app}-{env}"),
        stmt("Allow", ["lambda:InvokeFunction"], f"arn:aws:lambda:{region}:{ACCOUNT}:function:{app}-{env}-*"),
        stmt("Allow", ["cloudwatch:PutMetricData"], "*",
             condition={"StringEquals": {"cloudwatch:namespace": app}}),
        stmt("Allow", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
        stmt("Allow", ["ec2:DescribeInstances", "ec2:DescribeTags"], "*"),
    ]
    return rng.sample(options, rng.randint(2, 4))


def logs_statement(app, env, region):
    return stmt("Allow", ["logs:CreateLogStream", "logs:PutLogEvents"],
                f"arn:aws:logs:{region}:{ACCOUNT}:log-group:/{app}/{env}:*", sid="Logs")


# --- Escalation methods (Rhino Security Labs, plus wildcards) ---------------------------
def escalation_statements(kind):
    """An Allow that hands out escalation, on Resource *; some use lower-case actions
    or wildcards the way people write them."""
    lc = rng.random() < 0.1  # IAM actions are case-insensitive; some people type them so
    table = {
        "CreateNewPolicyVersion": ["iam:CreatePolicyVersion", "iam:GetPolicy", "iam:ListPolicyVersions"],
        "SetExistingDefaultPolicyVersion": ["iam:SetDefaultPolicyVersion", "iam:ListPolicyVersions"],
        "CreateAccessKey": ["iam:CreateAccessKey", "iam:ListAccessKeys", "iam:ListUsers"],
        "CreateLoginProfile": ["iam:CreateLoginProfile"],
        "UpdateLoginProfile": ["iam:UpdateLoginProfile", "iam:GetLoginProfile"],
        "AttachUserPolicy": ["iam:AttachUserPolicy", "iam:ListAttachedUserPolicies"],
        "AttachGroupPolicy": ["iam:AttachGroupPolicy"],
        "AttachRolePolicy": ["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
        "PutUserPolicy": ["iam:PutUserPolicy"],
        "PutGroupPolicy": ["iam:PutGroupPolicy"],
        "PutRolePolicy": ["iam:PutRolePolicy", "iam:GetRolePolicy"],
        "AddUserToGroup": ["iam:AddUserToGroup"],
        "UpdateAssumeRolePolicy": ["iam:UpdateAssumeRolePolicy", "iam:GetRole", "sts:AssumeRole"],
        "PassRoleEC2": ["iam:PassRole", "ec2:RunInstances", "ec2:Describe*", "ec2:CreateTags"],
        "PassRoleLambda": ["iam:PassRole", "lambda:CreateFunction", "lambda:InvokeFunction", "lambda:GetFunction"],
        "PassRoleLambdaDynamo": ["iam:PassRole", "lambda:CreateFunction", "lambda:CreateEventSourceMapping",
                                 "dynamodb:CreateTable", "dynamodb:PutItem"],
        "PassRoleGlue": ["iam:PassRole", "glue:CreateDevEndpoint", "glue:GetDevEndpoint"],
        "UpdateGlueDevEndpoint": ["glue:UpdateDevEndpoint", "glue:GetDevEndpoints"],
        "PassRoleCloudFormation": ["iam:PassRole", "cloudformation:CreateStack", "cloudformation:Describe*"],
        "PassRoleDataPipeline": ["iam:PassRole", "datapipeline:CreatePipeline", "datapipeline:PutPipelineDefinition",
                                 "datapipeline:ActivatePipeline"],
        "UpdateFunctionCode": ["lambda:UpdateFunctionCode", "lambda:GetFunction"],
        "PassRoleCodeBuild": ["iam:PassRole", "codebuild:CreateProject", "codebuild:StartBuild"],
        "PassRoleECS": ["iam:PassRole", "ecs:RegisterTaskDefinition", "ecs:RunTask", "ecs:Describe*"],
        "PassRoleSageMaker": ["iam:PassRole", "sagemaker:CreateNotebookInstance",
                              "sagemaker:CreatePresignedNotebookInstanceUrl"],
        "IamStar": ["iam:*"],
        "IamPutStar": ["iam:Put*", "iam:Get*", "iam:List*"],
        "IamAttachStar": ["iam:Attach*", "iam:Detach*", "iam:List*"],
        "LambdaStarPassRole": ["lambda:*", "iam:PassRole"],
        "Ec2StarPassRole": ["ec2:*", "iam:PassRole"],
        "CfnStar": ["cloudformation:*", "iam:PassRole", "s3:GetObject"],
    }
    actions = table[kind]
    if lc:
        actions = [a.lower() for a in actions]
    return [stmt("Allow", actions if len(actions) > 1 else actions[0], "*", sid="Automation")]


ESCALATION_KINDS = ["CreateNewPolicyVersion", "SetExistingDefaultPolicyVersion", "CreateAccessKey",
                    "CreateLoginProfile", "UpdateLoginProfile", "AttachUserPolicy", "AttachGroupPolicy",
                    "AttachRolePolicy", "PutUserPolicy", "PutGroupPolicy", "PutRolePolicy",
                    "AddUserToGroup", "UpdateAssumeRolePolicy", "PassRoleEC2", "PassRoleLambda",
                    "PassRoleLambdaDynamo", "PassRoleGlue", "UpdateGlueDevEndpoint",
                    "PassRoleCloudFormation", "PassRoleDataPipeline", "UpdateFunctionCode",
                    "PassRoleCodeBuild", "PassRoleECS", "PassRoleSageMaker", "IamStar", "IamPutStar",
                    "IamAttachStar", "LambdaStarPassRole", "Ec2StarPassRole", "CfnStar"]

# --- Trust policies ---------------------------------------------------------------------
SERVICE_OF = {"lambda": "lambda.amazonaws.com", "ecs": "ecs-tasks.amazonaws.com",
              "ec2": "ec2.amazonaws.com", "glue": "glue.amazonaws.com",
              "states": "states.amazonaws.com", "codebuild": "codebuild.amazonaws.com"}
OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/5C0FFEE0D15EA5E"
GITHUB = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
SAML = f"arn:aws:iam::{ACCOUNT}:saml-provider/okta"


def trust(kind, app=None, env=None):
    if kind in SERVICE_OF:
        return doc({"Effect": "Allow", "Principal": {"Service": SERVICE_OF[kind]}, "Action": "sts:AssumeRole"})
    if kind == "irsa":
        return doc({"Effect": "Allow", "Principal": {"Federated": OIDC},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {
                        "oidc.eks.eu-west-1.amazonaws.com/id/5C0FFEE0D15EA5E:sub": f"system:serviceaccount:{app}:{app}-{env}",
                        "oidc.eks.eu-west-1.amazonaws.com/id/5C0FFEE0D15EA5E:aud": "sts.amazonaws.com"}}})
    if kind == "github":
        return doc({"Effect": "Allow", "Principal": {"Federated": GITHUB},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                                  "StringLike": {"token.actions.githubusercontent.com:sub": f"repo:example/{app}:ref:refs/heads/main"}}})
    if kind == "cicd":
        return doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{PARTNER}:role/deployer"},
                    "Action": "sts:AssumeRole"})
    if kind == "saml":
        return doc({"Effect": "Allow", "Principal": {"Federated": SAML},
                    "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
                    "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}}})
    if kind == "account":
        return doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}})
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------
# Principals
truth = {}
roles, users, groups = [], [], []
used_names = set()


def unique(name):
    base, i = name, 2
    while name in used_names:
        name = f"{base}-{i}"
        i += 1
    used_names.add(name)
    return name


def inline(name, document):
    return {"PolicyName": name, "PolicyDocument": encode(document)}


def new_role(name, trust_kind, archetype, path="/", app=None, env=None, boundary=None, tags=None):
    name = unique(name)
    r = {
        "Path": path,
        "RoleName": name,
        "RoleId": ident("AROA"),
        "Arn": arn("role", name, path),
        "CreateDate": date(),
        "AssumeRolePolicyDocument": encode(trust(trust_kind, app, env)),
        "InstanceProfileList": [],
        "RolePolicyList": [],
        "AttachedManagedPolicies": [],
        "Tags": tags or [],
        "RoleLastUsed": {"LastUsedDate": date(), "Region": rng.choice(REGIONS)} if rng.random() < 0.8 else {},
    }
    if trust_kind == "ec2":
        r["InstanceProfileList"].append({
            "Path": "/", "InstanceProfileName": name, "InstanceProfileId": ident("AIPA"),
            "Arn": arn("instance-profile", name), "CreateDate": r["CreateDate"],
            "Roles": []})
    if boundary:
        r["PermissionsBoundary"] = {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": boundary}
        boundary_count[boundary] = boundary_count.get(boundary, 0) + 1
    truth[r["Arn"]] = archetype
    roles.append(r)
    return r


# Role archetypes: share of --roles (the rest are least-privilege service roles).
ROLE_MIX = [
    ("admin-managed", 0.008),         # AdministratorAccess attached
    ("admin-inline", 0.004),          # an inline *:* policy
    ("poweruser", 0.006),             # PowerUserAccess
    ("iam-full-access", 0.004),       # IAMFullAccess
    ("aws-managed-escalating", 0.010),  # AmazonEC2FullAccess, AWSLambda_FullAccess, ...
    ("escalation", 0.050),            # a Rhino method or wildcard, Resource *
    ("escalation-split", 0.008),      # iam:PassRole in one policy, the service action in another
    ("passrole-scoped", 0.012),       # iam:PassRole on named roles + ec2:RunInstances
    ("passrole-conditional", 0.008),  # iam:PassRole with iam:PassedToService + lambda create/invoke
    ("conditional-allow", 0.006),     # iam:AttachRolePolicy limited by iam:PolicyARN
    ("notaction-allow", 0.004),       # Allow NotAction iam:* on *
    ("ssm-operator", 0.006),          # ssm:SendCommand / StartSession
    ("deny-same-policy", 0.008),      # escalation Allow and an unconditional Deny in one policy
    ("deny-guardrail", 0.008),        # escalation Allow + the deny-iam-changes guardrail policy
    ("deny-notaction-guardrail", 0.004),  # escalation Allow + an allow-list Deny NotAction guardrail
    ("deny-conditional", 0.006),      # escalation Allow + a Deny that applies only outside a region
    ("boundary", 0.008),              # escalation Allow, capped by a permissions boundary
    ("old-version-broad", 0.006),     # a non-default policy version had iam:*; the default is scoped
]
n_roles = args.roles
counts = {a: max(1, round(w * n_roles)) for a, w in ROLE_MIX}
SLR_ROLES = [("AWSServiceRoleForAutoScaling", "autoscaling.amazonaws.com", "AutoScalingServiceRolePolicy"),
             ("AWSServiceRoleForECS", "ecs.amazonaws.com", "AmazonECSServiceRolePolicy"),
             ("AWSServiceRoleForRDS", "rds.amazonaws.com", "AmazonRDSServiceRolePolicy"),
             ("AWSServiceRoleForSupport", "support.amazonaws.com", "AWSSupportServiceRolePolicy")]
counts["least-privilege"] = n_roles - sum(counts.values()) - len(SLR_ROLES)
assert counts["least-privilege"] > 0, "too few roles for the mix"
plan = [a for a, _ in ROLE_MIX for _ in range(counts[a])] + ["least-privilege"] * counts["least-privilege"]
rng.shuffle(plan)

# Customer managed policy budget: whatever the shared ones, groups and users leave is
# spread over the roles (one or more dedicated policies each), minus ~3% left unattached.
n_groups_policies = args.groups  # one team policy per group
n_user_policies = max(1, args.users // 8)
reserve_unattached = max(1, args.policies // 33)
role_budget = args.policies - len(policies) - n_groups_policies - n_user_policies - reserve_unattached
role_budget -= counts["old-version-broad"] + counts["deny-same-policy"]  # some need an extra one
if role_budget < n_roles:
    raise SystemExit(f"--policies {args.policies} is too few for --roles {n_roles}: need about "
                     f"{args.policies - role_budget + n_roles}")
per_role = [role_budget // n_roles + (1 if i < role_budget % n_roles else 0) for i in range(n_roles)]

for i, archetype in enumerate(plan):
    team, svc = rng.choice(TEAMS), rng.choice(SERVICES)
    env = rng.choices(ENVS, weights=[5, 3, 3, 1, 1])[0]
    region = rng.choice(REGIONS)
    app = f"{team}-{svc}"
    runtime = rng.choices(["lambda", "ecs", "ec2", "irsa", "glue", "states"], weights=[30, 25, 12, 20, 8, 5])[0]
    tags = [{"Key": "team", "Value": team}, {"Key": "env", "Value": env}]
    dedicated = per_role[i]
    boundary = None
    if archetype == "boundary":
        boundary = rng.choice(BOUNDARIES)
    elif archetype == "least-privilege" and rng.random() < 0.05:
        boundary = BOUNDARIES[0]

    if archetype in ("admin-managed", "admin-inline", "poweruser", "iam-full-access"):
        trust_kind = rng.choice(["saml", "account", "cicd"])
        name = {"admin-managed": f"{team}-admin", "admin-inline": f"{team}-breakglass",
                "poweruser": f"{team}-poweruser", "iam-full-access": f"{team}-iam-admin"}[archetype]
        r = new_role(name, trust_kind, archetype, app=app, env=env, tags=tags)
    elif archetype in ("escalation", "escalation-split", "passrole-scoped", "passrole-conditional",
                       "conditional-allow", "deny-guardrail", "deny-notaction-guardrail",
                       "deny-same-policy", "deny-conditional", "boundary"):
        trust_kind = rng.choice(["cicd", "github", "codebuild", "lambda", "ec2"])
        r = new_role(f"{app}-{env}-{rng.choice(['deployer', 'automation', 'pipeline', 'provisioner', 'ops'])}",
                     trust_kind, archetype, app=app, env=env, boundary=boundary, tags=tags)
    elif archetype == "ssm-operator":
        r = new_role(f"{team}-ssm-operator-{env}", rng.choice(["saml", "lambda"]), archetype, app=app, env=env, tags=tags)
    elif archetype == "aws-managed-escalating":
        r = new_role(f"{app}-{env}", runtime if runtime != "irsa" else "lambda", archetype, app=app, env=env, tags=tags)
    else:
        path = "/service-role/" if rng.random() < 0.1 else "/"
        r = new_role(f"{app}-{env}-{runtime}", runtime, archetype, path=path, app=app, env=env,
                     boundary=boundary, tags=tags)

    # Dedicated customer managed policies: the first carries what the archetype is about,
    # the others are ordinary least-privilege ones.
    docs = []
    extra_managed = []
    inline_docs = []
    if archetype == "admin-managed":
        extra_managed.append(AWS["AdministratorAccess"])
    elif archetype == "admin-inline":
        inline_docs.append(("full-access", doc(stmt("Allow", "*", "*", sid="BreakGlass"))))
    elif archetype == "poweruser":
        extra_managed.append(AWS["PowerUserAccess"])
    elif archetype == "iam-full-access":
        extra_managed.append(AWS["IAMFullAccess"])
    elif archetype == "aws-managed-escalating":
        extra_managed.append(AWS[rng.choice(["AmazonEC2FullAccess", "AWSLambda_FullAccess",
                                             "AWSGlueServiceRole", "AWSCloudFormationFullAccess",
                                             "AmazonSSMFullAccess"])])
    elif archetype == "escalation":
        docs.append(doc(*escalation_statements(rng.choice(ESCALATION_KINDS)), logs_statement(app, env, region)))
    elif archetype == "escalation-split":
        service = rng.choice([["ec2:RunInstances", "ec2:DescribeInstances"],
                              ["lambda:CreateFunction", "lambda:InvokeFunction"],
                              ["cloudformation:CreateStack", "cloudformation:DescribeStacks"],
                              ["glue:CreateDevEndpoint"]])
        docs.append(doc(stmt("Allow", service, "*", sid="Deploy"), logs_statement(app, env, region)))
        docs.append(doc(stmt("Allow", "iam:PassRole", "*", sid="PassAnyRole")))
    elif archetype == "passrole-scoped":
        docs.append(doc(
            stmt("Allow", "iam:PassRole", [arn("role", f"{app}-{env}-instance"), arn("role", f"{app}-{env}-task")],
                 sid="PassOwnRoles"),
            stmt("Allow", ["ec2:RunInstances", "ec2:DescribeInstances", "ec2:CreateTags"], "*", sid="Launch")))
    elif archetype == "passrole-conditional":
        docs.append(doc(
            stmt("Allow", "iam:PassRole", "*", sid="PassToLambda",
                 condition={"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}),
            stmt("Allow", ["lambda:CreateFunction", "lambda:InvokeFunction", "lambda:GetFunction"], "*",
                 sid="Functions")))
    elif archetype == "conditional-allow":
        docs.append(doc(stmt("Allow", ["iam:AttachRolePolicy", "iam:DetachRolePolicy"], "*", sid="AttachReadOnly",
                             condition={"ArnEquals": {"iam:PolicyARN": [
                                 "arn:aws:iam::aws:policy/ReadOnlyAccess",
                                 "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]}})))
    elif archetype == "notaction-allow":
        docs.append(doc(stmt("Allow", ["iam:*", "organizations:*", "account:*", "sts:*"], "*",
                             sid="EverythingButIdentity", not_action=True)))
    elif archetype == "ssm-operator":
        docs.append(doc(stmt("Allow", ["ssm:SendCommand", "ssm:StartSession", "ssm:DescribeInstanceInformation",
                                       "ssm:GetCommandInvocation", "ec2:DescribeInstances"], "*", sid="RunCommands")))
    elif archetype == "deny-same-policy":
        kind = rng.choice(["PassRoleEC2", "PassRoleLambda", "PassRoleCloudFormation", "IamPutStar"])
        deny = ["iam:PassRole"] if kind.startswith("PassRole") else ["iam:Put*"]
        docs.append(doc(*escalation_statements(kind), stmt("Deny", deny, "*", sid="NeverThis")))
    elif archetype == "deny-guardrail":
        docs.append(doc(*escalation_statements(rng.choice(
            ["PassRoleEC2", "PassRoleLambda", "AttachRolePolicy", "PutRolePolicy", "CreateNewPolicyVersion",
             "IamPutStar", "IamAttachStar", "PassRoleCloudFormation", "CreateAccessKey"]))))
        extra_managed.append(SHARED["DenyIAMChanges"])
    elif archetype == "deny-notaction-guardrail":
        docs.append(doc(*escalation_statements(rng.choice(
            ["PassRoleEC2", "UpdateFunctionCode", "UpdateGlueDevEndpoint", "PassRoleGlue", "IamStar"]))))
        extra_managed.append(SHARED["DenyOutsideAllowed"])
    elif archetype == "deny-conditional":
        kind = rng.choice(["PassRoleEC2", "PassRoleLambda", "PassRoleCloudFormation"])
        denied = {"PassRoleEC2": "ec2:RunInstances", "PassRoleLambda": "lambda:CreateFunction",
                  "PassRoleCloudFormation": "cloudformation:CreateStack"}[kind]
        docs.append(doc(*escalation_statements(kind),
                        stmt("Deny", denied, "*", sid="HomeRegionOnly",
                             condition={"StringNotEquals": {"aws:RequestedRegion": region}})))
    elif archetype == "boundary":
        docs.append(doc(*escalation_statements(rng.choice(
            ["IamStar", "PassRoleEC2", "PassRoleLambda", "AttachRolePolicy", "PutUserPolicy",
             "CreateNewPolicyVersion", "UpdateFunctionCode"]))))
    elif archetype == "old-version-broad":
        scoped = doc(stmt("Allow", ["iam:GetRole", "iam:ListRoles"], "*"),
                     stmt("Allow", "iam:PassRole", arn("role", f"{app}-{env}-task"),
                          condition={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}))
        broad = doc(stmt("Allow", ["iam:*", "ecs:*"], "*", sid="Bootstrap"))
        pname = unique(f"{app}-{env}-iam")
        r["AttachedManagedPolicies"].append(attached(add_policy(pname, [broad, broad, scoped])))
    if runtime == "lambda" and archetype == "least-privilege":
        extra_managed.append(AWS[rng.choice(["AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole"])])
    elif runtime == "ecs" and archetype == "least-privilege" and rng.random() < 0.5:
        extra_managed.append(AWS["AmazonECSTaskExecutionRolePolicy"])
    elif runtime == "ec2" and archetype == "least-privilege":
        extra_managed.extend([AWS["AmazonSSMManagedInstanceCore"], AWS["CloudWatchAgentServerPolicy"]])
    if archetype == "least-privilege" and rng.random() < 0.03:
        extra_managed.append(AWS[rng.choice(["ReadOnlyAccess", "AmazonS3ReadOnlyAccess",
                                             "AmazonDynamoDBReadOnlyAccess", "CloudWatchReadOnlyAccess"])])
    while len(docs) < dedicated:
        if len(docs) == 0 or rng.random() < 0.5:
            docs.append(doc(*lp_statements(app, env, region)))
        else:
            docs.append(doc(logs_statement(app, env, region)))
    # Dedicated documents are customer managed; some roles also carry an inline one.
    if archetype == "least-privilege" and rng.random() < 0.25:
        inline_docs.append(("runtime-inline", doc(*lp_statements(app, env, region))))
    for j, d in enumerate(docs):
        suffix = ["access", "data", "logs", "runtime", "extra", "more"][min(j, 5)]
        pname = unique(f"{app}-{env}-{suffix}")
        r["AttachedManagedPolicies"].append(attached(add_policy(pname, [d], path=rng.choice(["/", "/app/"]))))
    for pname, d in inline_docs:
        r["RolePolicyList"].append(inline(pname, d))
    for parn in extra_managed:
        r["AttachedManagedPolicies"].append(attached(parn))
    if archetype == "least-privilege" and rng.random() < 0.2:
        r["RolePolicyList"].append(inline("inline-logs", doc(logs_statement(app, env, region))))

for name, service, pol in SLR_ROLES:
    path = f"/aws-service-role/{service}/"
    r = new_role(name, "lambda", "service-linked", path=path)
    r["AssumeRolePolicyDocument"] = encode(doc({"Effect": "Allow", "Principal": {"Service": service},
                                                "Action": "sts:AssumeRole"}))
    r["AttachedManagedPolicies"].append(attached(SLR[pol]))

# --- Groups -----------------------------------------------------------------------------
GROUP_MIX = [("admins", "admin-managed"), ("platform-admins", "iam-full-access"),
             ("power-users", "poweruser"), ("readonly", "least-privilege"),
             ("auditors", "least-privilege"), ("billing", "least-privilege"),
             ("iam-operators", "escalation"), ("deployers", "escalation"),
             ("support", "least-privilege")]
group_names = []
for i in range(args.groups):
    if i < len(GROUP_MIX):
        gname, archetype = GROUP_MIX[i]
    else:
        team = TEAMS[i % len(TEAMS)]
        role_kind = rng.choice(["developers", "oncall", "analysts", "leads", "contractors"])
        gname = f"{team}-{role_kind}"
        archetype = "escalation" if rng.random() < 0.06 else "least-privilege"
    gname = unique(gname)
    g = {"Path": "/", "GroupName": gname, "GroupId": ident("AGPA"), "Arn": arn("group", gname),
         "CreateDate": date(), "GroupPolicyList": [], "AttachedManagedPolicies": []}
    team = gname.split("-")[0]
    if gname == "admins":
        g["AttachedManagedPolicies"].append(attached(AWS["AdministratorAccess"]))
    elif gname == "platform-admins":
        g["AttachedManagedPolicies"].append(attached(AWS["IAMFullAccess"]))
        g["AttachedManagedPolicies"].append(attached(AWS["ReadOnlyAccess"]))
    elif gname == "power-users":
        g["AttachedManagedPolicies"].append(attached(AWS["PowerUserAccess"]))
    elif gname == "readonly":
        g["AttachedManagedPolicies"].append(attached(AWS["ReadOnlyAccess"]))
    elif gname == "auditors":
        g["AttachedManagedPolicies"].extend([attached(AWS["SecurityAudit"]), attached(AWS["ViewOnlyAccess"])])
    elif gname == "billing":
        g["GroupPolicyList"].append(inline("billing", doc(stmt("Allow", ["aws-portal:View*", "ce:Get*", "budgets:View*", "cur:Describe*"], "*"))))
    elif gname == "support":
        g["AttachedManagedPolicies"].append(attached(AWS["ViewOnlyAccess"]))
        g["GroupPolicyList"].append(inline("support-cases", doc(stmt("Allow", "support:*", "*"))))
    # A team policy per group, customer managed.
    if archetype == "escalation":
        kind = {"iam-operators": "IamPutStar", "deployers": "PassRoleCloudFormation"}.get(
            gname, rng.choice(["IamAttachStar", "PassRoleLambda", "CreateAccessKey", "AddUserToGroup",
                               "CreateNewPolicyVersion", "PassRoleEC2"]))
        d = doc(*escalation_statements(kind), stmt("Allow", ["cloudwatch:Get*", "logs:Get*"], "*"))
    else:
        d = doc(stmt("Allow", ["cloudwatch:Get*", "cloudwatch:List*", "logs:Get*", "logs:Describe*",
                               "logs:FilterLogEvents"], "*", sid="Observe"),
                *lp_statements(f"{team}-shared", "prod", rng.choice(REGIONS)))
    g["AttachedManagedPolicies"].append(attached(add_policy(unique(f"{gname}-team"), [d], path="/teams/")))
    truth[g["Arn"]] = archetype
    groups.append(g)
    group_names.append(gname)

# --- Users ------------------------------------------------------------------------------
USER_MIX = [("admin-managed", 0.02), ("escalation", 0.05), ("self-scoped-escalation", 0.02),
            ("deny-overrides-group", 0.02), ("ci-user", 0.04)]
ucounts = {a: max(1, round(w * args.users)) for a, w in USER_MIX}
ucounts["least-privilege"] = args.users - sum(ucounts.values())
uplan = [a for a, _ in USER_MIX for _ in range(ucounts[a])] + ["least-privilege"] * ucounts["least-privilege"]
rng.shuffle(uplan)
plain_groups = [n for n in group_names if truth[arn("group", n)] == "least-privilege"]
user_managed_left = n_user_policies
for archetype in uplan:
    if archetype == "ci-user":
        uname = unique(f"ci-{rng.choice(TEAMS)}-{rng.choice(['deploy', 'terraform', 'release', 'backup'])}")
        path = "/automation/"
    else:
        uname = unique(f"{rng.choice(FIRST)}.{rng.choice(LAST)}")
        path = "/"
    u = {"Path": path, "UserName": uname, "UserId": ident("AIDA"), "Arn": arn("user", uname, path),
         "CreateDate": date(), "UserPolicyList": [], "GroupList": [], "AttachedManagedPolicies": [],
         "Tags": []}
    if archetype != "ci-user":
        u["AttachedManagedPolicies"].append(attached(SHARED["ForceMFA"]))
        u["AttachedManagedPolicies"].append(attached(SHARED["SelfService"]))
        u["GroupList"] = rng.sample(plain_groups, min(len(plain_groups), rng.randint(1, 3)))
    if archetype == "admin-managed":
        if rng.random() < 0.5:
            u["GroupList"].append("admins")
        else:
            u["AttachedManagedPolicies"].append(attached(AWS["AdministratorAccess"]))
    elif archetype == "escalation":
        if rng.random() < 0.5:
            u["GroupList"].append(rng.choice(["iam-operators", "deployers", "power-users", "platform-admins"]))
        else:
            u["UserPolicyList"].append(inline("tooling", doc(*escalation_statements(rng.choice(
                ["CreateAccessKey", "AttachUserPolicy", "PutUserPolicy", "CreateLoginProfile",
                 "UpdateLoginProfile", "AddUserToGroup", "PassRoleLambda", "UpdateAssumeRolePolicy"])))))
    elif archetype == "self-scoped-escalation":
        # May attach or write policies, but only on itself: still an escalation.
        u["UserPolicyList"].append(inline("manage-own-policies", doc(stmt(
            "Allow", rng.choice([["iam:AttachUserPolicy"], ["iam:PutUserPolicy"], ["iam:AttachUserPolicy", "iam:DetachUserPolicy"]]),
            f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}", sid="OwnPolicies"))))
    elif archetype == "deny-overrides-group":
        u["GroupList"].append(rng.choice(["iam-operators", "deployers", "platform-admins"]))
        u["UserPolicyList"].append(inline("no-iam-writes", doc(stmt(
            "Deny", ["iam:*", "organizations:*", "cloudformation:*"], "*", sid="ReadOnlyIdentity"))))
    elif archetype == "ci-user":
        if rng.random() < 0.5:
            d = doc(*escalation_statements(rng.choice(["PassRoleCloudFormation", "CfnStar", "PassRoleLambda",
                                                       "UpdateFunctionCode", "CreateAccessKey"])))
        else:
            d = doc(stmt("Allow", ["s3:PutObject", "s3:GetObject"], f"arn:aws:s3:::{uname}-artifacts/*"),
                    stmt("Allow", "sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/{uname}-deploy"))
        if user_managed_left > 0:
            user_managed_left -= 1
            u["AttachedManagedPolicies"].append(attached(add_policy(unique(f"{uname}-policy"), [d], path="/automation/")))
        else:
            u["UserPolicyList"].append(inline("pipeline", d))
    truth[u["Arn"]] = archetype
    users.append(u)
# Managed policies written for users but never attached, up to the planned share.
while user_managed_left > 0:
    user_managed_left -= 1
    add_policy(unique(f"user-policy-draft-{user_managed_left}"),
               [doc(stmt("Allow", ["s3:GetObject"], f"arn:aws:s3:::drafts-{user_managed_left}/*"))])

# Unattached policies fill the count: stale copies of team policies, a few escalating.
i = 0
while len(policies) < args.policies:
    i += 1
    team, svc = rng.choice(TEAMS), rng.choice(SERVICES)
    if rng.random() < 0.05:
        d = doc(*escalation_statements(rng.choice(ESCALATION_KINDS)))
    else:
        d = doc(*lp_statements(f"{team}-{svc}", "old", rng.choice(REGIONS)))
    add_policy(unique(f"{team}-{svc}-unused-{i}"), [d], path="/legacy/")

# ---------------------------------------------------------------------------------------
out_policies = []
for parn, entry in policies.items():
    entry["AttachmentCount"] = attach_count[parn]
    entry["PermissionsBoundaryUsageCount"] = boundary_count.get(parn, 0)
    out_policies.append(entry)
document = {"UserDetailList": users, "GroupDetailList": groups, "RoleDetailList": roles,
            "Policies": out_policies, "IsTruncated": False}
with open(args.out, "w") as f:
    json.dump(document, f, indent=1)
    f.write("\n")
if args.truth:
    with open(args.truth, "w") as f:
        json.dump(truth, f, indent=1, sort_keys=True)
        f.write("\n")
print(f"{args.out}: {len(users)} users, {len(groups)} groups, {len(roles)} roles, "
      f"{len(out_policies)} managed policies "
      f"({sum(1 for p in out_policies if p['Arn'].startswith('arn:aws:iam::aws:'))} AWS managed, "
      f"{sum(1 for p in out_policies if p['AttachmentCount'] == 0)} unattached), "
      f"{sum(len(r['RolePolicyList']) for r in roles) + sum(len(u['UserPolicyList']) for u in users) + sum(len(g['GroupPolicyList']) for g in groups)} inline policies")
