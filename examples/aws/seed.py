#!/usr/bin/env python3
"""Seeds a moto server with posture's demo AWS account (123456789012, eu-west-1).

    python examples/aws/seed.py http://127.0.0.1:5000            # the demo account
    python examples/aws/seed.py http://127.0.0.1:5000 --restricted-collector

With --restricted-collector it also creates the IAM user `collector`, allowed to read
IAM, EC2, RDS and EKS but not S3, switches moto to authenticating and authorizing
requests, and prints that user's access key as JSON: the collector's S3 calls are then
denied, which the snapshot must record as "not collected".

The account holds what posture should find: an administrator group and user, a user
that can escalate through iam:PassRole and Lambda, an IRSA role with
administrator access for the ServiceAccount shop/builder, a role a foreign account can
assume without an ExternalId, an internet-facing instance with an administrator role and
IMDSv1, a security group open to the world, a public bucket, a public unencrypted
database and an unencrypted volume. And what it should not: a least-privilege IRSA
role for shop/web, a private encrypted bucket.
"""
import json
import sys

import boto3
import requests

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/D3M0C1U5TER"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
# A customer managed copy of AdministratorAccess (moto loads AWS managed policies only
# with MOTO_IAM_LOAD_MANAGED_POLICIES, which makes every request slower).
ADMIN = f"arn:aws:iam::{ACCOUNT}:policy/Administrator"

session = boto3.session.Session(
    aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
)
client = lambda service: session.client(service, endpoint_url=ENDPOINT)
iam, ec2, s3, rds, eks = (client(s) for s in ("iam", "ec2", "s3", "rds", "eks"))
doc = lambda *statements: json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
allow = lambda action, resource="*": {"Effect": "Allow", "Action": action, "Resource": resource}


def irsa_trust(namespace, name):
    return doc({
        "Effect": "Allow",
        "Principal": {"Federated": PROVIDER},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{ISSUER}:sub": f"system:serviceaccount:{namespace}:{name}",
                                       f"{ISSUER}:aud": "sts.amazonaws.com"}},
    })


# IAM -------------------------------------------------------------------------------
iam.create_policy(PolicyName="Administrator", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
iam.create_group(GroupName="admins")
iam.attach_group_policy(GroupName="admins", PolicyArn=ADMIN)
iam.create_user(UserName="alice")
iam.add_user_to_group(GroupName="admins", UserName="alice")
iam.create_user(UserName="ci-deployer")
iam.put_user_policy(UserName="ci-deployer", PolicyName="deploy-functions",
                    PolicyDocument=doc(allow(["iam:PassRole", "lambda:CreateFunction", "lambda:InvokeFunction", "lambda:List*"])))
iam.create_user(UserName="auditor")
iam.put_user_policy(UserName="auditor", PolicyName="read",
                    PolicyDocument=doc(allow(["ec2:Describe*", "s3:GetObject"])))
iam.create_role(RoleName="shop-builder", AssumeRolePolicyDocument=irsa_trust("shop", "builder"))
iam.attach_role_policy(RoleName="shop-builder", PolicyArn=ADMIN)
iam.create_role(RoleName="shop-web", AssumeRolePolicyDocument=irsa_trust("shop", "web"))
iam.put_role_policy(RoleName="shop-web", PolicyName="assets",
                    PolicyDocument=doc(allow("s3:GetObject", "arn:aws:s3:::demo-private-assets/*")))
iam.create_role(RoleName="vendor-access", AssumeRolePolicyDocument=doc({
    "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999988887777:root"}, "Action": "sts:AssumeRole"}))
iam.put_role_policy(RoleName="vendor-access", PolicyName="reports",
                    PolicyDocument=doc(allow("s3:GetObject", "arn:aws:s3:::demo-reports/*")))
iam.create_role(RoleName="ops-node", AssumeRolePolicyDocument=doc({
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}))
iam.put_role_policy(RoleName="ops-node", PolicyName="everything", PolicyDocument=doc(allow("*")))
iam.create_instance_profile(InstanceProfileName="ops-node")
iam.add_role_to_instance_profile(InstanceProfileName="ops-node", RoleName="ops-node")

# EC2, VPC, EBS ---------------------------------------------------------------------
vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]["SubnetId"]
open_sg = ec2.create_security_group(GroupName="wide-open", Description="everything from anywhere", VpcId=vpc)["GroupId"]
ec2.authorize_security_group_ingress(GroupId=open_sg, IpPermissions=[
    {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
ssh_sg = ec2.create_security_group(GroupName="ssh", Description="ssh from anywhere", VpcId=vpc)["GroupId"]
ec2.authorize_security_group_ingress(GroupId=ssh_sg, IpPermissions=[
    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
instance = ec2.run_instances(
    ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.medium",
    IamInstanceProfile={"Name": "ops-node"}, SecurityGroupIds=[open_sg],
    MetadataOptions={"HttpTokens": "optional", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
    NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "AssociatePublicIpAddress": True, "Groups": [open_sg]}],
)["Instances"][0]["InstanceId"]
volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=100, Encrypted=False)["VolumeId"]

# S3 --------------------------------------------------------------------------------
cfg = {"LocationConstraint": REGION}
s3.create_bucket(Bucket="demo-public-assets", CreateBucketConfiguration=cfg, ObjectOwnership="ObjectWriter")
s3.put_bucket_acl(Bucket="demo-public-assets", ACL="public-read")
s3.create_bucket(Bucket="demo-private-assets", CreateBucketConfiguration=cfg)
s3.put_public_access_block(Bucket="demo-private-assets", PublicAccessBlockConfiguration={
    "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
s3.put_bucket_encryption(Bucket="demo-private-assets", ServerSideEncryptionConfiguration={
    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})

# RDS, EKS --------------------------------------------------------------------------
rds.create_db_instance(DBInstanceIdentifier="orders", DBInstanceClass="db.t3.micro", Engine="postgres",
                       MasterUsername="orders", MasterUserPassword="not-a-real-password-1",
                       AllocatedStorage=20, PubliclyAccessible=True, StorageEncrypted=False)
eks.create_cluster(name="demo", roleArn=f"arn:aws:iam::{ACCOUNT}:role/ops-node",
                   resourcesVpcConfig={"subnetIds": [subnet], "endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]})

# Tests ask for many more roles to make the collector page through IAM.
import os
for i in range(int(os.environ.get("SEED_EXTRA_ROLES", "0"))):
    iam.create_role(RoleName=f"batch-{i:04d}", AssumeRolePolicyDocument=doc({
        "Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}))

out = {"instance": instance, "volume": volume, "securityGroups": [open_sg, ssh_sg]}

if "--restricted-collector" in sys.argv:
    iam.create_user(UserName="collector")
    iam.put_user_policy(UserName="collector", PolicyName="read-but-not-s3", PolicyDocument=doc(allow(
        ["iam:Get*", "iam:List*", "ec2:Describe*", "rds:Describe*", "eks:Describe*", "eks:List*", "sts:GetCallerIdentity"])))
    key = iam.create_access_key(UserName="collector")["AccessKey"]
    out["collector"] = {"accessKeyId": key["AccessKeyId"], "secretAccessKey": key["SecretAccessKey"]}
    # From now on moto authenticates and authorizes every request against its IAM.
    requests.post(f"{ENDPOINT}/moto-api/reset-auth", data=b"0").raise_for_status()

print(json.dumps(out))
